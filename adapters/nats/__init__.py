"""NATS JetStream: the connection and stream options, log frames, cursors, the log, a local server.

Needs the ``service`` extra (nats-py).
"""
