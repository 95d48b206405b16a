"""Every configuration key: its table, how its value is read, and what it means.

One table drives parsing, the ``GATEWAY_*`` environment names and the reference in
the README, so the three cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config import values as v

__all__ = ("ARRAYS", "ENV_ALIASES", "Key", "TABLES", "env_name")


@dataclass(frozen=True)
class Key:
    convert: Callable[[Any], Any]
    help: str
    default: str = ""


def _path(value: Any) -> Path:
    text = v.to_str(value)
    try:
        return Path(text).expanduser()
    except RuntimeError:  # "~name" of an account that does not exist
        raise v.ValueProblem(f"cannot expand {text.partition('/')[0]!r}: no such user's home") from None


def _names(value: Any) -> tuple[str, ...]:
    """A list of names, or one comma-separated string (as environment variables give)."""
    if isinstance(value, str):
        return tuple(name.strip() for name in value.split(",") if name.strip())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise v.ValueProblem(f"expected a list of names (or \"a,b\"), got {value!r}")


def _networks(value: Any) -> tuple[str, ...]:
    """Client networks: a list of CIDR strings, or one comma-separated string."""
    from gateway.users.addresses import parse_networks

    names = _names(value)
    try:
        return tuple(str(network) for network in parse_networks(names))
    except ValueError as exc:
        raise v.ValueProblem(str(exc)) from None


def _folder_options(value: Any) -> dict[str, Any]:
    """A folder's storage options: a table, passed to its backend as it is."""
    if not isinstance(value, dict):
        raise v.ValueProblem(f"expected a table of storage options, got {value!r}")
    return dict(value)


def _patterns(value: Any) -> tuple[str, ...]:
    """File name patterns: a list of strings (one string is one pattern)."""
    from gateway.users.filerules import validate_pattern

    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise v.ValueProblem(f"expected a list of name patterns such as [\"*.exe\"], got {value!r}")
    try:
        return tuple(validate_pattern(item) for item in items)
    except ValueError as exc:
        raise v.ValueProblem(str(exc)) from None


def _checksums(value: Any) -> tuple[str, ...]:
    """Checksum algorithms: a list of names (or "a,b"); true for the default set,
    false (or [], "off") for none."""
    from gateway.protocol.hashes import ALGORITHMS, DEFAULT_UPLOAD_CHECKSUMS, algorithm_named

    if isinstance(value, bool):
        return DEFAULT_UPLOAD_CHECKSUMS if value else ()
    if isinstance(value, str) and value.strip().lower() in ("off", "none", "false", "no", ""):
        return ()
    if isinstance(value, str) and value.strip().lower() in ("on", "true", "yes"):
        return DEFAULT_UPLOAD_CHECKSUMS
    chosen: list[str] = []
    for name in _names(value):
        algorithm = algorithm_named(name)
        if algorithm is None:
            known = ", ".join(a.key for a in ALGORITHMS)
            raise v.ValueProblem(f"unknown checksum algorithm {name!r}; expected some of {known}")
        if algorithm.key not in chosen:
            chosen.append(algorithm.key)
    return tuple(chosen)


def _limit(value: Any) -> int | None:
    return v.to_size(value, allow_off=True)


def _timeout(value: Any) -> float | None:
    return v.to_duration(value, allow_off=True)


def _optional_count(value: Any) -> int | None:
    return None if value in (0, "0", "off") else v.to_int(value, minimum=1)


def _metrics_listen(value: Any) -> tuple[str, int] | None:
    if isinstance(value, str) and value.strip().lower() in ("", "off", "none"):
        return None
    return v.to_host_port(value)


def _encoding(value: Any) -> str:
    import codecs

    name = v.to_str(value).strip()
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise v.ValueProblem(
            f"unknown encoding {name!r}; expected a Python codec name such as utf-8, "
            "latin-1, cp1251, gbk, shift_jis"
        ) from None


def _account(value: Any) -> tuple[str, str | None]:
    """"user" or "user:group", both existing on this system."""
    import grp
    import pwd

    text = v.to_str(value).strip()
    user, _, group = text.partition(":")
    try:
        pwd.getpwnam(user)
    except KeyError:
        raise v.ValueProblem(f"no system user {user!r}") from None
    if group:
        try:
            grp.getgrnam(group)
        except KeyError:
            raise v.ValueProblem(f"no system group {group!r}") from None
    return user, group or None


def _age(value: Any) -> float:
    """A duration where 0 is a value (no wait at all), not "off"."""
    if isinstance(value, str) and value.strip().lower() in ("off", "none"):
        raise v.ValueProblem(f"expected a duration such as 3600 or \"1h\" (0: no wait), got {value!r}")
    return v.to_duration(value, allow_off=True) or 0.0


def _level(value: Any) -> str:
    return v.to_choice(value, ("debug", "info", "warning", "error"))


def _argv(value: Any) -> tuple[str, ...]:
    """A program and its arguments as a list (run without a shell); a string (as an
    environment variable gives) is split as a POSIX shell would, nothing more."""
    if isinstance(value, str):
        import shlex

        try:
            value = shlex.split(value)
        except ValueError as exc:
            raise v.ValueProblem(f"cannot split {value!r} into arguments: {exc}") from None
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise v.ValueProblem(f"expected a command as a list of strings such as [\"/usr/local/bin/ingest\", \"--queue\", \"images\"], got {value!r}")
    if not value[0].strip() or any("\x00" in item for item in value):
        raise v.ValueProblem(f"the program name is empty or an argument holds a NUL byte: {value!r}")
    return tuple(value)


def _headers(value: Any) -> tuple[tuple[str, str], ...]:
    """HTTP headers: a table of names to values."""
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(x, str) for k, x in value.items()):
        raise v.ValueProblem(f"expected a table of header names to text values, got {value!r}")
    for name, text in value.items():
        if not name or any(c in name for c in " :\r\n") or any(c in text for c in "\r\n\x00"):
            raise v.ValueProblem(f"bad HTTP header {name!r}: names have no spaces or colons, values no line breaks")
    return tuple(value.items())


def _event_kinds(value: Any) -> tuple[str, ...]:
    from gateway.events.matching import EVENT_KINDS

    names = _names(value)
    for name in names:
        if name != "*" and name not in EVENT_KINDS:
            raise v.ValueProblem(f"unknown event {name!r}; expected some of {', '.join(EVENT_KINDS)}, or \"*\" for all")
    if not names:
        raise v.ValueProblem("expected at least one event kind")
    return names


def _path_globs(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise v.ValueProblem(f"expected a list of path patterns such as [\"/inbox/*\"], got {value!r}")
    for item in items:
        if not item.startswith("/"):
            raise v.ValueProblem(f"path patterns are absolute virtual paths (start with /), got {item!r}")
    return tuple(items)


def _url(value: Any) -> str:
    text = v.to_str(value).strip()
    if not text.lower().startswith(("http://", "https://")):
        raise v.ValueProblem(f"expected an http:// or https:// URL, got {value!r}")
    return text


def _refuse_code(value: Any) -> str:
    text = str(value).strip()
    if text not in ("450", "451", "550", "552", "553"):
        raise v.ValueProblem(f"expected one of 450, 451, 550, 552, 553; got {value!r}")
    return text


TABLES: dict[tuple[str, ...], dict[str, Key]] = {
    ("server",): {
        "shutdown_grace": Key(lambda x: v.to_duration(x), "seconds running transfers get to finish on SIGTERM/SIGINT before sessions are closed with 421", "30"),
        "welcome_message": Key(v.to_str, "the 220 greeting", "\"gateway FTP server ready\""),
        "device_quirks": Key(_names, "legacy device replies to turn on: allo_ok, mkd_existing_ok, site_noop, stor_creates_parents, or all", "[]"),
        "allow_fxp": Key(_names, "logins allowed PORT/EPRT to other hosts (site-to-site); \"*\" for all", "[]"),
        "strict_rfc": Key(v.to_bool, "the RFCs' replies where aioftp's differ: 503 to PBSZ/PROT before AUTH TLS, 425 when no passive port is free (false: aioftp's 200 and 421)", "true"),
        "allow_from": Key(_networks, "client networks (CIDR, IPv4 or IPv6) that may connect at all; any other address gets 421 instead of the greeting", "[] (every address)"),
        "deny_from": Key(_networks, "client networks refused before the greeting (421); a denied network wins over allow_from", "[]"),
        "run_as": Key(_account, "after binding the listeners (port 21 needs root), switch to this system user (\"ftp\" or \"ftp:ftp\")", "stay as started"),
    },
    ("tls",): {
        "cert": Key(_path, "certificate chain (PEM) for FTPS", "none"),
        "key": Key(_path, "private key (PEM); omit when it is in the certificate file", "none"),
        "require": Key(v.to_bool, "refuse login and clear data connections without TLS (explicit listeners)", "false"),
        "require_session_reuse": Key(v.to_bool, "data connections must resume the control connection's TLS session", "false"),
        "min_version": Key(lambda x: v.to_choice(str(x), ("1.2", "1.3")), "oldest TLS version accepted", "\"1.2\""),
        "data_handshake_timeout": Key(lambda x: v.to_duration(x), "seconds a protected data connection has to finish its TLS handshake (at most [limits] socket_timeout)", "15"),
    },
    ("passive",): {
        "ports": Key(v.to_port_range, "passive data port range, e.g. \"30000-30100\"", "any free port"),
        "address": Key(v.to_ipv4, "IPv4 address announced in PASV replies (NAT, containers)", "the control connection's"),
        "listen_timeout": Key(lambda x: v.to_duration(x), "seconds a PASV/EPSV listener waits for its transfer before its port goes back to the pool", "60"),
    },
    ("users",): {
        "source": Key(lambda x: v.to_choice(x, ("database", "static")), "where accounts come from: the database, or the [[users.static]] entries", "database, or static when [[users.static]] entries exist"),
        "failure_delay": Key(lambda x: v.to_duration(x, allow_off=True) or 0.0, "delay after a failed login from an address, doubled per failure", "0.25"),
        "failure_delay_max": Key(lambda x: v.to_duration(x, allow_off=True) or 0.0, "longest delay after failed logins", "8"),
        "ban_after": Key(lambda x: v.to_int(x, minimum=0), "failed logins after which an address is refused (0: never)", "10"),
        "ban_duration": Key(lambda x: v.to_duration(x), "seconds a banned address is refused", "600"),
        "ban_prefix_ipv4": Key(lambda x: v.to_int(x, minimum=0, maximum=32), "IPv4 failures and bans count per network of this prefix length (32: per address)", "32"),
        "ban_prefix_ipv6": Key(lambda x: v.to_int(x, minimum=0, maximum=128), "IPv6 failures and bans count per network of this prefix length (64: one host's usual share)", "64"),
        "account_lock_after": Key(lambda x: v.to_int(x, minimum=0), "failed logins of one login, from any addresses, after which its password logins are locked (0: never)", "50"),
        "account_lock_duration": Key(lambda x: v.to_duration(x), "seconds a login's password logins stay locked", "300"),
        "hash_workers": Key(lambda x: v.to_int(x, minimum=1, maximum=256), "threads verifying passwords (argon2), apart from storage work", "half the CPUs, at least 1"),
        "hash_queue": Key(lambda x: v.to_int(x, minimum=0), "password checks that may wait for a hashing thread; beyond, logins get 421", "64"),
    },
    ("users", "database"): {
        "url": Key(v.to_str, "SQLAlchemy URL of the accounts database (postgresql://..., sqlite:///file)", "sqlite:///gateway.sqlite3"),
        "cache_ttl": Key(lambda x: v.to_duration(x), "seconds an account lookup is reused; CLI changes reach new logins within it", "5"),
        "query_timeout": Key(lambda x: v.to_duration(x), "seconds a database query may take before the login gets 421", "5"),
        "heartbeat_interval": Key(lambda x: v.to_duration(x), "seconds between this node's marks that its sessions are alive", "10"),
        "stale_after": Key(lambda x: v.to_duration(x), "seconds after which a silent node's sessions stop counting against connection limits", "60"),
    },
    ("storage",): {
        "root": Key(v.to_str, "where users without their own root live (<root>/<login>): a path or URL", "\"var/ftp\""),
        "fsync": Key(v.to_bool, "on local disk, sync each upload (and its directory) before 226: a power loss leaves the old file or the whole new one", "true"),
        "upload_checksums": Key(_checksums, "checksums computed as an upload of a whole file streams (no second read) and kept with the file, so HASH, XCRC, XMD5, XSHA* answer without reading it: some of sha256, crc32, md5, sha1, sha512; false or [] turns it off (see Checksums)", "[\"sha256\"]"),
        "stale_temporary_age": Key(_age, "upload temporaries unchanged this long, and held by no running upload, are cleaned up at start-up and by `gateway serve --repair`: partial files removed, interrupted appends and resumes rolled back, S3 multipart uploads aborted; keep it far above any pause of an upload on a node sharing the storage (0: no wait)", "3600"),
    },
    ("limits",): {
        "max_connections": Key(_optional_count, "control connections at once, server-wide", "unlimited"),
        "max_connections_per_address": Key(_optional_count, "control connections at once from one client address (many devices behind one NAT share an address)", "unlimited"),
        "read_speed_limit": Key(_limit, "server-wide download limit, bytes/s (\"10MiB\")", "unlimited"),
        "write_speed_limit": Key(_limit, "server-wide upload limit, bytes/s", "unlimited"),
        "read_speed_limit_per_connection": Key(_limit, "download limit per connection, bytes/s", "unlimited"),
        "write_speed_limit_per_connection": Key(_limit, "upload limit per connection, bytes/s", "unlimited"),
        "login_timeout": Key(_timeout, "seconds to log in after connecting", "60"),
        "idle_timeout": Key(_timeout, "seconds without a command before the session is closed", "900"),
        "socket_timeout": Key(_timeout, "seconds a connection may stall (no byte moving) before it is dropped", "300"),
        "storage_timeout": Key(_timeout, "seconds one storage operation may take", "none"),
        "max_line_length": Key(lambda x: v.to_int(x, minimum=64, maximum=1 << 20), "longest command line accepted, bytes", "4096"),
        "hash_max_size": Key(_limit, "largest file (or range) HASH, XCRC, XMD5, XSHA* read to compute a checksum not kept with it: 556 beyond; kept checksums are answered whatever the size", "unlimited"),
    },
    ("logging",): {
        "level": Key(_level, "debug (every command), info (sessions, logins, transfers), warning, error", "\"info\""),
        "format": Key(lambda x: v.to_choice(x, ("text", "json")), "text, or json (one object per line)", "\"text\""),
        "file": Key(_path, "log file", "standard error"),
        "xferlog": Key(_path, "transfer log in the xferlog format", "none"),
    },
    ("metrics",): {
        "listen": Key(_metrics_listen, "HOST:PORT of the Prometheus endpoint (/metrics)", "off"),
    },
    ("events",): {
        "enabled": Key(v.to_bool, "record events and deliver them to [[events.actions]] (see Events)", "true when an action or [events.pre_upload] is configured"),
        "database_url": Key(v.to_str, "SQLAlchemy URL of the outbox database", "the accounts database; with static users sqlite:///var/events.sqlite3"),
        "node_name": Key(v.to_str, "this node's name in events and in the outbox's claims (unique per node sharing a database)", "the host name"),
        "poll_interval": Key(lambda x: v.to_duration(x), "seconds between looks for due deliveries (new events are delivered at once)", "1"),
        "retry_base": Key(lambda x: v.to_duration(x), "seconds before the first retry of a failed delivery, doubled per try", "1"),
        "retry_max": Key(lambda x: v.to_duration(x), "longest wait between tries", "300"),
        "max_attempts": Key(_optional_count, "tries after which a delivery is given up (status failed; `gateway events retry` revives it); 0: no limit", "20"),
        "max_age": Key(_timeout, "seconds after the event when a delivery is given up; 0: no limit", "86400"),
        "lease": Key(lambda x: v.to_duration(x), "seconds a node holds a delivery it claimed (at least the action's timeout + 30); a dead node's claims return after it", "60"),
        "concurrency": Key(lambda x: v.to_int(x, minimum=1, maximum=256), "deliveries at once on this node (one per action and account at a time)", "8"),
    },
    ("events", "pre_upload"): {
        "url": Key(_url, "endpoint asked (POST, the event as JSON) before an upload opens storage: 2xx allows it, another status refuses it with the body's first line", "none"),
        "command": Key(_argv, "command asked instead (the event on stdin): exit 0 allows, another exit refuses with its output's first line", "none"),
        "secret": Key(v.to_str, "HMAC-SHA256 key signing the request (X-Gateway-Signature)", "none"),
        "timeout": Key(lambda x: v.to_duration(x), "seconds the hook has to answer", "5"),
        "fail_open": Key(v.to_bool, "allow uploads when the hook cannot be asked (false: refuse with 451)", "false"),
        "headers": Key(_headers, "extra HTTP headers, a table", "{}"),
        "refuse_code": Key(_refuse_code, "reply code of a refusal whose text does not start with one (450, 451, 550, 552, 553)", "\"550\""),
    },
}

#: Arrays of tables and the keys each entry takes.
ARRAYS: dict[tuple[str, ...], dict[str, Key]] = {
    ("listeners",): {
        "host": Key(v.to_host, "address to listen on", "\"127.0.0.1\""),
        "port": Key(v.to_port, "port to listen on (0: any free port)", "2121"),
        "tls": Key(lambda x: v.to_choice(x, ("auto", "none", "explicit", "implicit")), "auto (AUTH TLS when [tls] has a certificate), none, explicit or implicit", "\"auto\""),
        "require_tls": Key(v.to_bool, "refuse login without TLS on this listener", "[tls] require"),
        "encoding": Key(_encoding, "file names and replies on this listener (devices: latin-1, cp1251, gbk, shift_jis...); bytes invalid in it survive unchanged", "\"utf-8\""),
        "proxy_protocol": Key(lambda x: v.to_choice(x, ("off", "v1", "v2", "any")), "behind a load balancer: the PROXY protocol header (off, v1, v2 or any) that connections from proxy_trusted start with, control and passive data connections alike, read before the greeting (and before TLS); the client it names is the session's address everywhere (see Behind a load balancer)", "\"off\""),
        "proxy_trusted": Key(_networks, "the balancers (addresses or CIDR networks) whose PROXY header is believed; their connections without a valid one are refused, as are headers from anyone else; other clients connect directly under their own address", "[] (needed with proxy_protocol)"),
    },
    ("users", "static"): {
        "login": Key(v.to_str, "user name (\"anonymous\" for anonymous FTP)", "required"),
        "password_hash": Key(v.to_str, "argon2id hash from `gateway hash-password`", "required unless anonymous"),
        "root": Key(v.to_str, "the user's files: a path or URL (s3://bucket/prefix, memory://, ...)", "<storage.root>/<login>"),
        "home": Key(v.to_str, "directory a session starts in (virtual, absolute)", "\"/\""),
        "encoding": Key(_encoding, "this user's file names in another code page than the listener's", "the listener's"),
        "permissions": Key(lambda x: x, "list of {path, readable, writable} or \"PATH:r\" / \"PATH:rw\" strings", "read-write on / (read-only for anonymous)"),
        "max_connections": Key(_optional_count, "sessions of this user at once", "unlimited"),
        "read_speed_limit": Key(_limit, "download limit for all the user's sessions, bytes/s", "unlimited"),
        "write_speed_limit": Key(_limit, "upload limit for all the user's sessions, bytes/s", "unlimited"),
        "read_speed_limit_per_connection": Key(_limit, "download limit per session, bytes/s", "unlimited"),
        "write_speed_limit_per_connection": Key(_limit, "upload limit per session, bytes/s", "unlimited"),
        "allow_from": Key(_networks, "client networks (CIDR) this user may log in from; from any other, a right password gets the wrong password's 530", "[] (every address)"),
        "deny_from": Key(_networks, "client networks this user may not log in from; they win over allow_from", "[]"),
        "allow_names": Key(_patterns, "file name patterns (`*.jpg`) new files must match; directories are not constrained", "[] (any name)"),
        "deny_names": Key(_patterns, "file and directory name patterns (`*.exe`) this user may not create (553); a pattern with / matches the whole path", "[]"),
        "hide_denied": Key(v.to_bool, "also hide names matching deny_names from listings, and answer 550 (as if missing) to any command naming one", "false"),
        "names_case_sensitive": Key(v.to_bool, "match the name patterns with regard to case", "false"),
        "max_file_size": Key(_limit, "largest file an upload may make, bytes (\"100MiB\"): 552 at ALLO, or when the bytes pass it (the upload is rolled back)", "unlimited"),
        "max_bytes": Key(_limit, "quota: bytes this user's files may hold together (\"10GiB\"); an upload past it gets 552 and is rolled back (see Quotas)", "unlimited"),
        "max_files": Key(_optional_count, "quota: files this user may keep", "unlimited"),
        "upload_per_day": Key(_limit, "quota: bytes this user may upload per UTC day", "unlimited"),
        "upload_per_month": Key(_limit, "quota: bytes this user may upload per UTC month", "unlimited"),
        "download_per_day": Key(_limit, "quota: bytes this user may download per UTC day", "unlimited"),
        "download_per_month": Key(_limit, "quota: bytes this user may download per UTC month", "unlimited"),
        "mounts": Key(lambda x: x, "[[folders]] mounted in this user's tree: a list of {path, folder, read_only} (read_only defaults to the folder's); see Virtual folders", "[]"),
    },
    ("folders",): {
        "name": Key(v.to_str, "the folder's name, as mounts name it", "required"),
        "root": Key(v.to_str, "its files: a path or URL (s3://bucket/prefix, memory://, ...)", "required"),
        "options": Key(_folder_options, "storage options for this root, merged over [storage.options] (endpoint_url, credentials...)", "{}"),
        "read_only": Key(v.to_bool, "mounts of this folder are read-only unless they say otherwise", "false"),
        "description": Key(v.to_str, "what the folder is for", "none"),
    },
    ("events", "actions"): {
        "name": Key(v.to_str, "the action's name, kept in the outbox (renaming it orphans its pending deliveries)", "\"<kind>-<n>\" (1-based)"),
        "kind": Key(lambda x: v.to_choice(x, ("webhook", "command")), "webhook (POST JSON to url) or command (run it, the event on stdin)", "required"),
        "events": Key(_event_kinds, "event kinds delivered: upload, download, delete, rename, mkdir, rmdir, login, login_failed, or \"*\"", "[\"upload\"]"),
        "accounts": Key(_names, "logins whose events are delivered", "[] (every account)"),
        "paths": Key(_path_globs, "virtual path globs (`*` within a directory, `**` across); a rename matches by either name", "[] (every path)"),
        "url": Key(_url, "webhook: the endpoint; 2xx means delivered", "required for webhooks"),
        "secret": Key(v.to_str, "webhook: HMAC-SHA256 key of the X-Gateway-Signature header", "none (unsigned)"),
        "timeout": Key(lambda x: v.to_duration(x), "seconds a try may take (a command is killed after)", "10"),
        "headers": Key(_headers, "webhook: extra HTTP headers, a table", "{}"),
        "command": Key(_argv, "command: program and arguments, run without a shell; exit 0 means delivered", "required for commands"),
    },
}

#: Tables whose content is passed through unchecked (checked by the backend at start).
FREE_TABLES: frozenset[tuple[str, ...]] = frozenset({("storage", "options")})

#: Short environment names for the settings changed most often.
ENV_ALIASES: dict[str, tuple[str | int, ...]] = {
    "GATEWAY_HOST": ("listeners", 0, "host"),
    "GATEWAY_PORT": ("listeners", 0, "port"),
    "GATEWAY_ROOT": ("storage", "root"),
    "GATEWAY_DATABASE_URL": ("users", "database", "url"),
}


def env_name(table: tuple[str, ...], key: str) -> str:
    """``GATEWAY_LIMITS_IDLE_TIMEOUT`` for ``[limits] idle_timeout``."""
    return "GATEWAY_" + "_".join((*table, key)).upper()
