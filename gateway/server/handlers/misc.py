"""SYST, NOOP, FEAT, OPTS, HELP, ALLO: informational and no-op commands."""

from __future__ import annotations

from gateway.protocol.commands import COMMANDS, feat_lines, help_lines
from gateway.protocol.hashes import session_feat_line
from gateway.protocol.listing import DEFAULT_MLSX_FACTS
from gateway.server.encodings import set_utf8
from gateway.server.filepolicy import allocation_refusal
from gateway.server.handlers.base import HandlerBase
from gateway.server.handlers.hashes import hash_option
from gateway.server.handlers.site import storage_supports
from gateway.server.session import Session

__all__ = ("MiscCommands",)


class MiscCommands(HandlerBase):
    async def syst(self, connection: Session, rest: str) -> bool:
        connection.response("215", self.system_type)
        return True

    async def noop(self, connection: Session, rest: str) -> bool:
        connection.response("200", "ok")
        return True

    def enabled_commands(self) -> set[str]:
        """Verbs this server really serves (what FEAT and HELP may advertise)."""
        enabled = set(self.commands_mapping)
        if self.tls_context is None:
            enabled -= {"auth", "pbsz", "prot", "ccc"}
        if not storage_supports(self.path_io_factory, "set_mtime"):
            enabled.discard("mfmt")
        return enabled

    async def feat(self, connection: Session, rest: str) -> bool:
        selected = connection.login.hash_algorithm  # starred on the HASH line (OPTS HASH)
        features = (session_feat_line(line, selected) for line in feat_lines(self.enabled_commands()))
        lines = ["Features:", *features, "End"]
        connection.response("211", lines, True)
        return True

    async def opts(self, connection: Session, rest: str) -> bool:
        option, _, value = rest.strip().partition(" ")
        option = option.upper()
        value = value.strip().upper()
        if option == "UTF8" or option == "UTF-8":
            if value in ("", "ON"):
                set_utf8(connection, True)
                connection.response("200", "UTF8 mode on")
            elif value == "OFF":
                encoding = set_utf8(connection, False)
                connection.response("200", f"UTF8 mode off; names in {encoding}")
            else:
                connection.response("501", "OPTS UTF8 takes ON or OFF")
        elif option == "HASH":
            connection.response(*hash_option(connection, value))
        elif option == "MLST":
            # RFC 3659 7.9: select the facts MLSD/MLST lines carry; unknown ones are ignored
            wanted = {fact.lower() for fact in value.split(";") if fact}
            facts = tuple(f for f in DEFAULT_MLSX_FACTS if f in wanted)
            connection.login.mlst_facts = facts
            connection.response("200", "MLST OPTS " + "".join(f + ";" for f in facts))
        else:
            connection.response("501", f"option {option!r} not understood")
        return True

    async def help(self, connection: Session, rest: str) -> bool:
        verb = rest.strip().lower()
        enabled = self.enabled_commands()
        if verb:
            info = COMMANDS.get(verb)
            if info is None or verb not in enabled:
                connection.response("502", f"unknown command {verb.upper()!r}")
            else:
                connection.response("214", f"Syntax: {info.help}")
            return True
        connection.response("214", ["The following commands are recognized:", *help_lines(enabled), "help ok"], True)
        return True

    async def allo(self, connection: Session, rest: str) -> bool:
        refused = allocation_refusal(connection, rest)  # beyond the account's largest file
        if refused is not None:
            connection.response(*refused)
        elif self.device_quirks.allo_ok:
            connection.response("200", "ALLO command successful")
        else:
            connection.response("202", "no storage allocation necessary")
        return True
