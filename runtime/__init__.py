"""The runtime: executes compiled dispatch tables against an event store."""
