"""The pytest plugin of pytest-hdp; a thin layer over the `hdp` library."""
