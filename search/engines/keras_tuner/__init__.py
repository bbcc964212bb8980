"""The KerasTuner engine: its oracles proposing, its Hyperband rounds on Dask."""
