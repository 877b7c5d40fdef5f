"""Wire codecs: pure functions from values to bytes and back, no I/O."""
