"""SITE subcommands (HELP, CHMOD, UTIME) and MFMT: metadata that storage may not have.

Permission bits and modification times are optional storage capabilities
(``chmod(path, mode)``, ``set_mtime(path, mtime)`` on the path I/O).  Where storage
has them the commands work; where it has not (object stores) they get a clear
502/504, or, with the ``site_noop`` device quirk, a 200 that changes nothing, for
devices that stop when a SITE CHMOD fails.
"""

from __future__ import annotations

from typing import Any

from gateway.protocol.listing import format_mdtm, parse_mdtm
from gateway.protocol.paths import NAME_REFUSED, ROOT, name_allowed
from gateway.server.filepolicy import HIDDEN_REPLY, path_hidden
from gateway.server.handlers.base import HandlerBase
from gateway.server.quotapolicy import available_reply, quota_context, quota_report
from gateway.server.session import Session

__all__ = ("SiteCommands", "SITE_HELP", "storage_supports")

#: What SITE CHMOD may set: permission bits only, never setuid, setgid or sticky.
CHMOD_BITS = 0o777
#: Times every storage keeps exactly (1970 to 2038, a signed 32-bit ``time_t``); a
#: time outside is read back after setting it, since the filesystem may store another
#: (ext4 turns 9999 into 2446).
_SAFE_MTIMES = range(0, 2**31)
#: The last second MFMT accepts: 9999-12-31 23:59:59 UTC (RFC 3659 time-vals have 4
#: year digits).
_LAST_MTIME = 253402300799

SITE_HELP: tuple[str, ...] = (
    "SITE HELP",
    "SITE CHMOD <sp> octal-mode <sp> pathname",
    "SITE UTIME <sp> YYYYMMDDHHMMSS <sp> pathname",
    "SITE UTIME <sp> pathname <sp> atime <sp> mtime <sp> ctime <sp> UTC",
    "SITE QUOTA",
)


def storage_supports(factory: Any, capability: str) -> bool:
    """Whether the path I/O a factory makes has an optional method (nurseries unwrapped)."""
    seen = 0
    while hasattr(factory, "factory") and seen < 8:  # PathIONursery, possibly nested
        factory = factory.factory
        seen += 1
    return callable(getattr(factory, capability, None))


class SiteCommands(HandlerBase):
    async def site(self, connection: Session, rest: str) -> bool:
        sub, _, argument = rest.strip().partition(" ")
        sub = sub.upper()
        argument = argument.strip()
        if sub == "HELP":
            connection.response("214", ["SITE commands recognized:", *SITE_HELP, "help ok"], True)
        elif sub == "CHMOD":
            await self._site_chmod(connection, argument)
        elif sub == "UTIME":
            await self._site_utime(connection, argument)
        elif sub == "QUOTA":
            lines = await quota_report(quota_context(connection.path_io), connection.user.login)
            connection.response("211", lines, True)
        else:
            shown = "".join(c if c.isprintable() else "?" for c in sub)[:32]
            connection.response("500", f"'SITE {shown}' not understood; try SITE HELP")
        return True

    async def _site_chmod(self, connection: Session, argument: str) -> None:
        mode_text, _, path = argument.partition(" ")
        if not path or not (0 < len(mode_text) <= 4 and all(c in "01234567" for c in mode_text)):
            connection.response("501", "SITE CHMOD needs an octal mode and a path")
            return
        mode = int(mode_text, 8)
        if mode & ~CHMOD_BITS:
            connection.response("501", "SITE CHMOD sets permission bits only (0 to 777)")
            return
        real, virtual = await self.resolve(connection, path)
        if virtual == ROOT:
            connection.response("550", "can't change the mode of the root directory")
            return
        if path_hidden(connection, virtual):
            connection.response(*HIDDEN_REPLY)
            return
        if not await self.allowed(connection, virtual, "writable"):
            connection.response("550", "permission denied")
            return
        chmod = getattr(connection.path_io, "chmod", None)
        if chmod is None:
            if self.device_quirks.site_noop:
                connection.response("200", "SITE CHMOD accepted (storage has no modes)")
            else:
                connection.response("504", "SITE CHMOD not supported by this storage")
            return
        await chmod(real, mode)
        connection.response("200", "SITE CHMOD command successful")

    async def _site_utime(self, connection: Session, argument: str) -> None:
        words = argument.split(" ")
        try:
            if len(words) >= 5 and words[-1].upper() == "UTC":
                # SITE UTIME path atime mtime ctime UTC (the path may hold spaces)
                mtime = parse_mdtm(words[-3])
                path = " ".join(words[:-4])
            else:
                stamp, _, path = argument.partition(" ")
                mtime = parse_mdtm(stamp)
        except ValueError:
            connection.response("501", "SITE UTIME needs YYYYMMDDHHMMSS and a path")
            return
        if not path:
            connection.response("501", "SITE UTIME needs YYYYMMDDHHMMSS and a path")
            return
        if await self._set_mtime(connection, path, mtime, "SITE UTIME"):
            connection.response("200", "SITE UTIME command successful")

    async def avbl(self, connection: Session, rest: str) -> bool:
        """AVBL (draft-peterson-streamlined-ftp-command-extensions): the bytes the
        quota still allows where the path (default: the working directory) lies."""
        real, _virtual = await self.resolve(connection, rest.strip(" ") or ".")
        connection.response(*await available_reply(quota_context(connection.path_io), real))
        return True

    async def mfmt(self, connection: Session, rest: str) -> bool:
        """MFMT (draft-somers-ftp-mfxx): set a file's modification time, reply 213."""
        stamp, _, path = rest.strip(" ").partition(" ")
        try:
            mtime = parse_mdtm(stamp)
        except ValueError:
            connection.response("501", "MFMT needs YYYYMMDDHHMMSS and a path")
            return True
        if not path:
            connection.response("501", "MFMT needs YYYYMMDDHHMMSS and a path")
            return True
        if await self._set_mtime(connection, path, mtime, "MFMT"):
            connection.response("213", f"Modify={format_mdtm(mtime)}; {path}")
        return True

    async def _set_mtime(self, connection: Session, path: str, mtime: float, what: str) -> bool:
        if not 0 <= mtime <= _LAST_MTIME:
            connection.response("501", f"{what} takes a time from 1970 to 9999")
            return False
        if not name_allowed(path):
            connection.response("553", NAME_REFUSED)
            return False
        real, virtual = await self.resolve(connection, path)
        path_io = connection.path_io
        if not await self.allowed(connection, virtual, "writable"):
            connection.response("550", "permission denied")
            return False
        if path_hidden(connection, virtual):
            connection.response(*HIDDEN_REPLY)
            return False
        set_mtime = getattr(path_io, "set_mtime", None)
        if set_mtime is None:
            if what == "SITE UTIME" and self.device_quirks.site_noop:
                connection.response("200", "SITE UTIME accepted (storage keeps its own times)")
            else:
                connection.response("502" if what == "MFMT" else "504", f"{what} not supported by this storage")
            return False
        if int(mtime) in _SAFE_MTIMES:
            await set_mtime(real, mtime)
            return True
        # outside 1970-2038 the filesystem may store another time and say nothing:
        # read it back, and put the old time back if it did
        before = await path_io.stat(real)
        await set_mtime(real, mtime)
        after = await path_io.stat(real)
        if abs(after.st_mtime - mtime) < 1:
            return True
        await set_mtime(real, before.st_mtime)
        connection.response("501", f"{what}: this storage cannot keep that time; the file's time is unchanged")
        return False
