"""Durable events: what clients did, delivered to webhooks and commands, never lost.

The pure parts (the payload, its signature, which actions an event goes to, the retry
schedule, a hook's verdict) are apart from the I/O (the outbox table, the delivery
worker, the HTTP and command actions, the pre-upload hook).  ``gateway.events.service``
puts them together for ``gateway serve``.
"""
