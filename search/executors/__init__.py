"""Where trials run: worker processes under a supervisor, fold processes, a Dask cluster."""
