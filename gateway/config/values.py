"""Pure conversions of configuration values, each failing with what it expected.

TOML, environment variables and flags all arrive here: TOML with types, the other
two as strings.  So every converter accepts both the typed value and its text form
("30", "30s", "5m"; "8MiB", 8388608; "true", true).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

__all__ = (
    "ValueProblem",
    "to_bool",
    "to_choice",
    "to_duration",
    "to_host_port",
    "to_int",
    "to_port",
    "to_port_range",
    "to_size",
    "to_str",
)


class ValueProblem(ValueError):
    """A value of the wrong shape; the message says what was expected."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueProblem(f"expected true or false, got {value!r}")


def to_str(value: Any, *, empty_ok: bool = False) -> str:
    if not isinstance(value, str):
        raise ValueProblem(f"expected a string, got {value!r}")
    if not empty_ok and not value.strip():
        raise ValueProblem("expected a non-empty string")
    if "\x00" in value:
        raise ValueProblem(f"a NUL byte is not allowed here: {value!r}")
    return value


def to_int(value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool):
        raise ValueProblem(f"expected a whole number, got {value!r}")
    if isinstance(value, str):
        try:
            value = int(value.strip().replace("_", ""))
        except ValueError:
            raise ValueProblem(f"expected a whole number, got {value!r}") from None
    if not isinstance(value, int):
        raise ValueProblem(f"expected a whole number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueProblem(f"expected at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueProblem(f"expected at most {maximum}, got {value}")
    return value


def to_choice(value: Any, choices: tuple[str, ...]) -> str:
    text = value.strip().lower() if isinstance(value, str) else None
    if text not in choices:
        raise ValueProblem(f"expected one of {', '.join(choices)}; got {value!r}")
    return text


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def to_duration(value: Any, *, allow_off: bool = False) -> float | None:
    """Seconds from 30, 2.5, "30s", "5m", "1h", "250ms"; 0 or "off" means none."""
    if allow_off and (value == 0 or (isinstance(value, str) and value.strip().lower() in ("off", "none", "0"))):
        return None
    if isinstance(value, bool):
        raise ValueProblem(f"expected a duration such as 30, \"30s\" or \"5m\", got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        unit = match.group(2).lower() if match.group(2) else None
        seconds = float(match.group(1)) * _DURATION_UNITS[unit]
    else:
        raise ValueProblem(f"expected a duration such as 30, \"30s\" or \"5m\", got {value!r}")
    if seconds < 0 or (seconds == 0 and not allow_off):
        raise ValueProblem(f"expected a positive duration, got {value!r}")
    return seconds


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "kib": 1024, "ki": 1024,
    "m": 1000**2, "mb": 1000**2, "mib": 1024**2, "mi": 1024**2,
    "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "gi": 1024**3,
    "t": 1000**4, "tb": 1000**4, "tib": 1024**4, "ti": 1024**4,
}


def to_size(value: Any, *, allow_off: bool = False) -> int | None:
    """Bytes from 1048576, "1MiB", "512KiB", "10MB"; 0 or "off" means none."""
    if allow_off and (value == 0 or (isinstance(value, str) and value.strip().lower() in ("off", "none", "0"))):
        return None
    if isinstance(value, bool):
        raise ValueProblem(f"expected a size such as 1048576 or \"8MiB\", got {value!r}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        size = int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()])
    else:
        raise ValueProblem(f"expected a size such as 1048576 or \"8MiB\", got {value!r}")
    if size <= 0:
        raise ValueProblem(f"expected a positive size, got {value!r}")
    return size


def to_port(value: Any, *, zero_ok: bool = True) -> int:
    return to_int(value, minimum=0 if zero_ok else 1, maximum=65535)


def to_port_range(value: Any) -> range:
    """"30000-30100" or [30000, 30100] (both ends included), or one port."""
    if isinstance(value, list) and len(value) == 2:
        low, high = value
    elif isinstance(value, int) and not isinstance(value, bool):
        low = high = value
    elif isinstance(value, str):
        left, sep, right = value.partition("-")
        low, high = left.strip(), (right.strip() if sep else left.strip())
    else:
        raise ValueProblem(f"expected a port range such as \"30000-30100\", got {value!r}")
    try:
        start, end = to_port(low, zero_ok=False), to_port(high, zero_ok=False)
    except ValueProblem:
        raise ValueProblem(f"expected a port range such as \"30000-30100\", got {value!r}") from None
    if start > end:
        raise ValueProblem(f"port range runs backwards: {value!r}")
    return range(start, end + 1)


def to_host(value: Any) -> str:
    text = to_str(value).strip()
    if any(c.isspace() or not c.isprintable() for c in text):
        raise ValueProblem(f"expected a host name or address, got {value!r}")
    return text


def to_ipv4(value: Any) -> str:
    text = to_str(value).strip()
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise ValueProblem(f"expected an IPv4 address such as 203.0.113.10, got {value!r}") from None


def to_host_port(value: Any) -> tuple[str, int]:
    """"127.0.0.1:9121", "[::1]:9121" or ":9121" (all interfaces)."""
    text = to_str(value).strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueProblem(f"expected HOST:PORT such as 127.0.0.1:9121, got {value!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, to_port(port)
