"""What operators see of a running server: logs, the transfer log, metrics.

Each is a :class:`gateway.server.events.ServerEvents` listener or a logging setup;
the protocol code knows none of them.
"""
