"""The agent: the process that owns raw sockets on one host (see hdp.agent.protocol)."""
