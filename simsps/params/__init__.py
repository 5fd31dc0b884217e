"""Parameters: the emitter model and the sample sections of a preset TOML, loaded,
validated and frozen (pytrees where the simulation needs them)."""
