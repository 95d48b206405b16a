"""SIGHUP: take a renewed TLS certificate and changed settings without a restart.

What can change in place does: the certificate and key (new handshakes use them;
sessions already encrypted keep theirs), the static accounts, the log level, the
server's allowed and denied client networks, the checksums uploads compute, and the
limits and timeouts every server reads for its next sessions.  What cannot
(listeners, the accounts source or database, metrics address, storage options) is
named in the log as needing a restart.  A configuration that does not load is
refused with its error and the running one is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gateway.common import AvailableConnections
from gateway.config import ConfigError
from gateway.config.model import Settings
from gateway.server.hashing import upload_algorithms
from gateway.service.build import StartError, StaticUserManager, static_user, tls_context
from gateway.users.addresses import AddressRules

__all__ = ("apply_reload",)

logger = logging.getLogger("gateway.service")

def _changed_needing_restart(old: Settings, new: Settings) -> list[str]:
    names = []
    if old.listeners != new.listeners:
        names.append("listeners")
    if old.users.source != new.users.source:
        names.append("users.source")
    if old.users.database != new.users.database:
        names.append("users.database")
    if old.metrics != new.metrics:
        names.append("metrics")
    if old.storage.options != new.storage.options or old.storage.fsync != new.storage.fsync:
        names.append("storage")
    if old.passive != new.passive:
        names.append("passive")
    if old.events != new.events:
        names.append("events")
    if old.tls.configured != new.tls.configured:
        names.append("tls (switched on or off)")
    return names


def apply_reload(
    current: Settings, load: Callable[[], Settings], servers: list[Any], manager: Any
) -> Settings:
    """Load the configuration again and apply what can change; return what is in force."""
    try:
        new = load()
    except ConfigError as exc:
        logger.error("reload refused, the running configuration stays: %s", exc)
        return current
    if new.tls.configured and current.tls.configured:
        try:
            tls_context(new.tls)  # loads cleanly on its own before touching live ones
        except StartError as exc:
            logger.error("reload refused, the running configuration stays: %s", exc)
            return current
        contexts = {id(c): c for s in servers for c in (s.ssl, s.tls_context) if c is not None}
        for context in contexts.values():
            context.load_cert_chain(str(new.tls.cert), str(new.tls.key) if new.tls.key else None)
        logger.info("TLS certificate reloaded from %s", new.tls.cert)
    if isinstance(manager, StaticUserManager) and new.users.source == "static":
        users = [static_user(new, entry) for entry in new.users.static]
        manager.users = users
        for user in users:
            manager.available_connections.setdefault(
                user, AvailableConnections(user.maximum_connections)
            )
        logger.info("static accounts reloaded: %d", len(users))
    limits = new.limits
    for server in servers:
        server.idle_timeout = limits.idle_timeout
        server.login_timeout = limits.login_timeout
        server.socket_timeout = limits.socket_timeout
        server.data_tls_handshake_timeout = new.tls.data_handshake_timeout
        server.passive_listen_timeout = new.passive.listen_timeout
        server.path_timeout = limits.storage_timeout
        server.maximum_connections_per_address = limits.max_connections_per_address
        server.welcome_message = new.welcome_message
        server.upload_checksums = upload_algorithms(new.storage.upload_checksums)
        server.hash_max_size = limits.hash_max_size
        server.address_rules = AddressRules.parse(new.allow_from, new.deny_from)
    numeric = getattr(logging, new.logging.level.upper())
    for name in ("gateway", "backends"):
        logging.getLogger(name).setLevel(numeric)
    pending = _changed_needing_restart(current, new)
    if pending:
        logger.warning("reloaded; these changes need a restart to apply: %s", ", ".join(pending))
    else:
        logger.info("configuration reloaded")
    return new
