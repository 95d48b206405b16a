"""Quotas: how much an account (or a shared folder) may keep and move, and the words
a refusal uses.

Pure values and arithmetic, no I/O: the server checks an upload or a download
against a :class:`Quota` and the usage a store (process memory or the database)
reports; the command line parses ``max-bytes=10G`` here.

* ``max_bytes`` / ``max_files``: what the account's files may hold together;
* ``upload_per_day`` / ``upload_per_month``, ``download_per_day`` /
  ``download_per_month``: bytes moved per calendar day or month (UTC).

None everywhere means no quota, as for every account that sets none.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, fields

__all__ = (
    "QUOTA_FIELDS",
    "Quota",
    "QuotaSettingError",
    "TransferUsage",
    "Usage",
    "format_size",
    "option_name",
    "parse_quota_setting",
    "parse_size",
    "periods",
    "quota_reason",
)


@dataclass(frozen=True, slots=True)
class Quota:
    """An account's (or a shared folder's) limits; None: no limit."""

    max_bytes: int | None = None
    max_files: int | None = None
    upload_per_day: int | None = None
    upload_per_month: int | None = None
    download_per_day: int | None = None
    download_per_month: int | None = None

    def __post_init__(self) -> None:
        for name in QUOTA_FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{option_name(name)} must be a count of bytes (or files) >= 0, "
                                 f"got {value!r}")

    @property
    def active(self) -> bool:
        return any(getattr(self, name) is not None for name in QUOTA_FIELDS)

    @property
    def limits_storage(self) -> bool:
        return self.max_bytes is not None or self.max_files is not None

    @property
    def limits_uploads(self) -> bool:
        return self.upload_per_day is not None or self.upload_per_month is not None

    @property
    def limits_downloads(self) -> bool:
        return self.download_per_day is not None or self.download_per_month is not None

    def as_dict(self) -> dict[str, int | None]:
        return {name: getattr(self, name) for name in QUOTA_FIELDS}


#: The limits, as the ``User`` keyword arguments, columns and config keys name them.
QUOTA_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Quota))

NO_QUOTA = Quota()


@dataclass(slots=True)
class Usage:
    """What an account (or folder) holds: bytes and files, and the bytes claimed by
    uploads still running (counted against ``max_bytes`` until they end)."""

    bytes: int = 0
    files: int = 0
    reserved: int = 0


@dataclass(slots=True)
class TransferUsage:
    """Bytes moved in the current day and month (UTC)."""

    uploaded_day: int = 0
    uploaded_month: int = 0
    downloaded_day: int = 0
    downloaded_month: int = 0

    def upload_room(self, quota: Quota) -> tuple[int | None, str]:
        """Bytes an upload may still move today, and the limit that says so."""
        return _room(
            (quota.upload_per_day, self.uploaded_day, "upload-per-day"),
            (quota.upload_per_month, self.uploaded_month, "upload-per-month"),
        )

    def download_room(self, quota: Quota) -> tuple[int | None, str]:
        return _room(
            (quota.download_per_day, self.downloaded_day, "download-per-day"),
            (quota.download_per_month, self.downloaded_month, "download-per-month"),
        )


def _room(*limits: tuple[int | None, int, str]) -> tuple[int | None, str]:
    best: int | None = None
    name = ""
    for limit, used, label in limits:
        if limit is None:
            continue
        room = max(limit - used, 0)
        if best is None or room < best:
            best, name = room, label
    return best, name


def periods(now: float | None = None) -> tuple[str, str]:
    """The day and the month transfer quotas count in: ("2026-12-02", "2026-12"), UTC."""
    stamp = time.gmtime(time.time() if now is None else now)
    day = time.strftime("%Y-%m-%d", stamp)
    return day, day[:7]


def option_name(field: str) -> str:
    """``max_bytes`` -> ``max-bytes`` (the command line's and the replies' name)."""
    return field.replace("_", "-")


_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?")


class QuotaSettingError(ValueError):
    """A quota setting that does not parse (the text says which and why)."""


def parse_size(text: str, *, count: bool = False) -> int | None:
    """``10G``, ``512MiB``, ``1048576`` (x1024 suffixes); ``none`` clears the limit.
    ``count`` (max-files) takes a plain number only."""
    cleaned = text.strip().lower()
    if cleaned in ("", "none", "unlimited", "off", "-"):
        return None
    match = _SIZE.fullmatch(cleaned)
    if match is None or (count and (match.group(2) or "." in match.group(1))):
        expected = "a number of files such as 10000" if count else "a size such as 10G or 512MiB"
        raise QuotaSettingError(f"expected {expected} (or none), got {text!r}")
    value = int(float(match.group(1)) * _UNITS[match.group(2)])
    if value > 2**62:
        raise QuotaSettingError(f"{text!r} is too large")
    return value


def parse_quota_setting(text: str) -> tuple[str, int | None]:
    """``max-bytes=10G`` -> ("max_bytes", 10737418240); ``max-files=none`` clears."""
    name, sep, value = text.partition("=")
    field = name.strip().lower().replace("-", "_")
    if not sep or field not in QUOTA_FIELDS:
        known = ", ".join(option_name(f) for f in QUOTA_FIELDS)
        raise QuotaSettingError(f"expected NAME=VALUE with NAME one of {known}, got {text!r}")
    try:
        return field, parse_size(value, count=field == "max_files")
    except QuotaSettingError as exc:
        raise QuotaSettingError(f"{option_name(field)}: {exc}") from None


def format_size(size: int) -> str:
    """``10485760`` -> ``10 MiB`` (two decimals when not round); bytes below 1 KiB."""
    for unit, factor in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            value = size / factor
            return f"{value:g} {unit}" if value.is_integer() else f"{value:.2f} {unit}"
    return f"{size} bytes"


def quota_reason(limit_name: str, limit: int) -> str:
    """The refusal text naming the limit: ``quota exceeded: max-bytes 10 MiB``."""
    shown = str(limit) if limit_name == "max-files" else format_size(limit)
    return f"quota exceeded: {limit_name} {shown}"
