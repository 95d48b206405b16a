"""What recovery reports, shared by every backend's recovery: the actions, one
root's report, and the interface the service runs per root."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ("Action", "RootRecovery", "RootReport", "age_text", "record_action", "stale_text")

logger = logging.getLogger("backends.recovery")

#: Errors kept per root (the rest are counted).
_MAX_ERRORS = 20


@dataclass(frozen=True)
class Action:
    """One thing recovery did (or, in a dry run, would do) or refused to do."""

    #: "removed", "restored", "aborted", "left" (needs a person); "would ..." in a dry run
    kind: str
    where: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.where}" + (f": {self.detail}" if self.detail else "")


@dataclass
class RootReport:
    """What recovery found under one root."""

    root: str
    actions: list[Action] = field(default_factory=list)
    #: directory entries (local) or multipart uploads (S3) looked at
    examined: int = 0
    #: temporaries left alone because an upload may still be writing them
    kept: int = 0
    #: no work left (the whole root was seen, or the bound was reached)
    done: bool = False
    #: stopped at the bound before seeing everything
    truncated: bool = False
    errors: list[str] = field(default_factory=list)
    error_count: int = 0

    def count(self, kind: str) -> int:
        return sum(1 for action in self.actions if action.kind == kind)

    def summary(self) -> str:
        kinds: dict[str, int] = {}
        for action in self.actions:
            kinds[action.kind] = kinds.get(action.kind, 0) + 1
        parts = [f"{count} {kind}" for kind, count in kinds.items()] or ["nothing to do"]
        if self.kept:
            parts.append(f"{self.kept} in use or recent, kept")
        if self.error_count:
            parts.append(f"{self.error_count} error(s)")
        text = ", ".join(parts) + f" ({self.examined} examined"
        return text + (", stopped at the bound)" if self.truncated else ")")

    def error(self, text: str) -> None:
        self.error_count += 1
        if len(self.errors) < _MAX_ERRORS:
            self.errors.append(text)
        logger.warning("recovery of %s: %s", self.root, text)


def record_action(report: RootReport, action: Action) -> None:
    """Add ``action`` to ``report`` and log it (what needs a person as a warning)."""
    report.actions.append(action)
    if action.kind == "left":
        logger.warning("recovery: %s", action)
    else:
        logger.info("recovery: %s", action)


class RootRecovery(Protocol):
    """One root's recovery, resumable: ``run`` until it says it is done."""

    report: RootReport

    async def run(self, *, deadline: float | None = None) -> bool:
        """Work until done (True) or until ``time.monotonic()`` passes ``deadline``."""
        ...

    async def aclose(self) -> None: ...


def age_text(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:.0f} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:g} s"


def stale_text(max_age: float) -> str:
    """Why a temporary counts as left behind, for messages."""
    return f"untouched for over {age_text(max_age)}" if max_age > 0 else "no upload holds it"
