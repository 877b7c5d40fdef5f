from hdp.cli import entry

entry()
