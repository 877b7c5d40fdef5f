"""pytest-hdp's library: wire codecs, raw sockets and the `hdp` command line."""

__version__ = "0.1.0"
