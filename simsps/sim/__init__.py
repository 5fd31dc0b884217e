"""The simulation: the device kernel, the detector chain, the host engine loop, and the
per-pulse NumPy reference model that the tests use as the oracle."""
