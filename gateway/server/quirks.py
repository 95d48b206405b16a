"""Legacy device mode: replies old cameras, scanners and PLCs depend on.

Embedded FTP clients were written against one server each and break on replies that
are correct but unexpected: a 202 to ALLO, a 550 to MKD of a directory that already
exists, a 502 to SITE CHMOD.  Each such reply is a separate switch here, off by
default, so a deployment turns on exactly what its devices need and a standard
client never sees a non-standard reply.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

__all__ = ("DeviceQuirks", "LEGACY_DEVICES")


@dataclass(frozen=True, slots=True)
class DeviceQuirks:
    """Per-server switches for devices that need replies other than the standard one.

    ``allo_ok``: ALLO answers 200 instead of 202 (some firmware treats any reply
    other than 200 as a failure).
    ``mkd_existing_ok``: MKD of an existing directory answers 257 instead of 550,
    for devices that create their upload folder before every upload.
    ``site_noop``: SITE CHMOD / SITE UTIME answer 200 without doing anything where
    storage has no modes (object stores), instead of 502/504.
    ``stor_creates_parents``: STOR into a missing directory creates it instead of
    answering 550.

    227 and 229 are always single-line and every data transfer (MLSD included) ends
    with 226; those need no switch because that is what the server always does.
    """

    allo_ok: bool = False
    mkd_existing_ok: bool = False
    site_noop: bool = False
    stor_creates_parents: bool = False

    @classmethod
    def from_names(cls, names: Any) -> DeviceQuirks:
        """Build from switch names (``"allo_ok,site_noop"`` or an iterable); ``"all"``
        turns every switch on.  Unknown names raise ValueError so a typo is not silent."""
        if isinstance(names, str):
            names = [name.strip() for name in names.split(",") if name.strip()]
        known = {f.name for f in fields(cls)}
        wanted = set(names)
        if "all" in wanted:
            return LEGACY_DEVICES
        unknown = wanted - known
        if unknown:
            raise ValueError(f"unknown device quirks {sorted(unknown)}; known: {sorted(known)}")
        return cls(**{name: True for name in wanted})


#: Every switch on: the profile for a network of old devices.
LEGACY_DEVICES = DeviceQuirks(
    allo_ok=True, mkd_existing_ok=True, site_noop=True, stor_creates_parents=True
)
