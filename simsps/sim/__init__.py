"""The simulation: keys, the device kernel, the chunk step (``step`` on a device,
``host_step`` in numba on CPUs; identical records), the engine loop, and the per-pulse
NumPy reference model that the tests use as the oracle."""
