"""Applications on top of the library: the `simsps` command, the `simsps analyze` report,
the reproduction of the seed paper, the demo."""
