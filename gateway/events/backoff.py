"""When a failed delivery is tried again, and when it is given up.

Exponential: ``base``, ``2*base``, ``4*base``... capped at ``cap``, with up to a
``jitter`` fraction taken off so that many rows failing together do not come back
together.  Given up (status "failed") after ``max_attempts`` tries or once the event is
older than ``max_age`` seconds, whichever comes first (None: no such limit).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ("Backoff",)


@dataclass(frozen=True)
class Backoff:
    base: float = 1.0
    cap: float = 300.0
    max_attempts: int | None = 20
    max_age: float | None = 86400.0
    jitter: float = 0.2

    def delay(self, attempts: int, spread: float = 0.0) -> float:
        """Seconds to wait after the ``attempts``-th failed try (1 = the first);
        ``spread`` in [0, 1) takes that fraction of ``jitter`` off."""
        exponent = max(attempts - 1, 0)
        raw = self.cap if exponent >= 64 else min(self.base * (2 ** exponent), self.cap)
        return raw * (1.0 - self.jitter * min(max(spread, 0.0), 1.0))

    def gives_up(self, attempts: int, created: float, now: float) -> bool:
        """Whether a row tried ``attempts`` times, for an event of time ``created``,
        is given up at ``now``."""
        if self.max_attempts is not None and attempts >= self.max_attempts:
            return True
        return self.max_age is not None and now - created >= self.max_age
