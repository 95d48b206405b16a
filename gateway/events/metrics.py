"""Prometheus metrics of the event outbox, in the service's registry.

Counters by action: events queued, delivered, retried, given up; the rows pending
(as last counted by this node's worker); the time from an event to its delivery.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ("EventMetrics",)

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, float("inf"))


class EventMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.queued = Counter("gateway_events_queued", "Event deliveries written to the outbox",
                              ["action"], registry=r)
        self.delivered = Counter("gateway_events_delivered", "Event deliveries an action took",
                                 ["action"], registry=r)
        self.retried = Counter("gateway_events_retried", "Delivery tries that failed and will be retried",
                               ["action"], registry=r)
        self.failed = Counter("gateway_events_failed", "Event deliveries given up (status failed)",
                              ["action"], registry=r)
        self.unrecorded = Counter(
            "gateway_events_unrecorded",
            "Events held in memory because the outbox database could not be written", registry=r,
        )
        self.pending = Gauge("gateway_events_pending", "Outbox rows waiting for delivery", registry=r)
        self.latency = Histogram(
            "gateway_events_delivery_seconds", "Seconds from an event to its delivery",
            ["action"], buckets=_LATENCY_BUCKETS, registry=r,
        )
