"""TOML file, then ``GATEWAY_*`` environment variables, then flags: one ``Settings``.

Each later source overrides the earlier one key by key.  Every problem is reported
as a :class:`ConfigError` naming where the value came from (the file and line, the
environment variable, or the flag), the key, and what was expected.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from gateway.config import values as v
from gateway.config.keys import ARRAYS, ENV_ALIASES, FREE_TABLES, TABLES, Key, env_name
from gateway.config.locate import line_of
from gateway.config.model import (
    DatabaseUsers,
    EventAction,
    EventSettings,
    FolderSettings,
    LimitSettings,
    ListenerSettings,
    LoggingSettings,
    MetricsSettings,
    MountSettings,
    PassiveSettings,
    PermissionSettings,
    PreUploadSettings,
    Settings,
    StaticUser,
    StorageSettings,
    TlsSettings,
    UsersSettings,
)

__all__ = ("ConfigError", "load_settings")

ConfigPath = tuple[str | int, ...]
ANONYMOUS = frozenset({"anonymous", "ftp"})


class ConfigError(ValueError):
    """A configuration that cannot be served; the message says where and why."""


class _Sources:
    """Where each value came from, for error messages."""

    def __init__(self, file: Path | None, text: str) -> None:
        self.file = file
        self.text = text
        self.overrides: dict[ConfigPath, str] = {}

    def describe(self, path: ConfigPath) -> str:
        name = _dotted(path)
        origin = self.overrides.get(path)
        if origin is not None:
            return f"{origin} ({name})"
        if self.file is None:
            return name
        line = line_of(self.text, path)
        where = f"{self.file} line {line}" if line else str(self.file)
        return f"{where}: {name}"

    def fail(self, path: ConfigPath, problem: str) -> ConfigError:
        return ConfigError(f"{self.describe(path)}: {problem}")


def _dotted(path: ConfigPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


# -- reading the sources ----------------------------------------------------------------
def _read_file(path: Path) -> tuple[dict[str, Any], str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except PermissionError:
        raise ConfigError(
            f"cannot read configuration file {path}: permission denied; let the user "
            "running gateway read it"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc}") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _set(raw: dict[str, Any], path: ConfigPath, value: Any) -> None:
    node: Any = raw
    for index, part in enumerate(path[:-1]):
        following = path[index + 1]
        if isinstance(part, int):
            while len(node) <= part:
                node.append({})
            node = node[part]
            continue
        if part not in node:
            node[part] = [] if isinstance(following, int) else {}
        node = node[part]
    node[path[-1]] = value


def _environment_overrides(env: Mapping[str, str]) -> list[tuple[ConfigPath, str, str]]:
    found: list[tuple[ConfigPath, str, str]] = []
    for table, keys in TABLES.items():
        for key in keys:
            name = env_name(table, key)
            if name in env:
                found.append(((*table, key), env[name], f"environment variable {name}"))
    for name, path in ENV_ALIASES.items():
        if name in env:
            found.append((path, env[name], f"environment variable {name}"))
    return found


# -- checking ----------------------------------------------------------------------------
def _convert(sources: _Sources, path: ConfigPath, key: Key, value: Any) -> Any:
    try:
        return key.convert(value)
    except v.ValueProblem as exc:
        raise sources.fail(path, str(exc)) from None


def _table(sources: _Sources, raw: Any, path: ConfigPath, keys: Mapping[str, Key],
           nested: Sequence[str] = ()) -> dict[str, Any]:
    """The converted values of one table; unknown keys are refused."""
    if not isinstance(raw, dict):
        raise sources.fail(path, f"expected a table, got {raw!r}")
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if name in nested:
            continue
        key = keys.get(name)
        if key is None:
            known = ", ".join(sorted([*keys, *nested]))
            raise sources.fail((*path, name), f"unknown key; known keys here: {known}")
        out[name] = _convert(sources, (*path, name), key, value)
    return out


def _permissions(sources: _Sources, path: ConfigPath, raw: Any) -> tuple[PermissionSettings, ...]:
    if not isinstance(raw, list):
        raise sources.fail(path, "expected a list of {path, readable, writable} tables or \"PATH:rw\" strings")
    result: list[PermissionSettings] = []
    for index, item in enumerate(raw):
        where = (*path, index)
        if isinstance(item, str):
            target, sep, rights = item.rpartition(":")
            if not sep or rights not in ("", "r", "w", "rw", "wr", "-"):
                raise sources.fail(where, f"expected \"PATH:r\", \"PATH:rw\" or \"PATH:-\", got {item!r}")
            entry = PermissionSettings(target, "r" in rights, "w" in rights)
        elif isinstance(item, dict):
            unknown = set(item) - {"path", "readable", "writable"}
            if unknown:
                raise sources.fail(where, f"unknown keys {sorted(unknown)}; known: path, readable, writable")
            try:
                entry = PermissionSettings(
                    v.to_str(item.get("path", "/")),
                    v.to_bool(item.get("readable", True)),
                    v.to_bool(item.get("writable", True)),
                )
            except v.ValueProblem as exc:
                raise sources.fail(where, str(exc)) from None
        else:
            raise sources.fail(where, f"expected a table or a \"PATH:rw\" string, got {item!r}")
        if not PurePosixPath(entry.path).is_absolute() or "\x00" in entry.path:
            raise sources.fail(where, f"permission path must be absolute (start with /), got {entry.path!r}")
        result.append(entry)
    return tuple(result)


def _mounts(sources: _Sources, path: ConfigPath, raw: Any) -> tuple[MountSettings, ...]:
    """A static user's ``mounts``: a list of {path, folder, read_only} tables."""
    if not isinstance(raw, list):
        raise sources.fail(path, "expected a list of {path, folder, read_only} tables")
    from backends.mounts import normalize_mount_path

    result: list[MountSettings] = []
    for index, item in enumerate(raw):
        where = (*path, index)
        if not isinstance(item, dict) or not {"path", "folder"} <= set(item):
            raise sources.fail(where, f"expected {{path = \"/shared\", folder = \"NAME\"}}, got {item!r}")
        unknown = set(item) - {"path", "folder", "read_only"}
        if unknown:
            raise sources.fail(where, f"unknown keys {sorted(unknown)}; known: path, folder, read_only")
        try:
            mount_path = normalize_mount_path(v.to_str(item["path"]))
            read_only = None if "read_only" not in item else v.to_bool(item["read_only"])
            entry = MountSettings(mount_path, v.to_str(item["folder"]), read_only)
        except (ValueError, v.ValueProblem) as exc:
            raise sources.fail(where, str(exc)) from None
        if any(other.path == entry.path for other in result):
            raise sources.fail((*where, "path"), f"two folders mounted at {entry.path}")
        result.append(entry)
    return tuple(result)


def _folders(sources: _Sources, raw: Any) -> tuple[FolderSettings, ...]:
    path: tuple[str, ...] = ("folders",)
    if not isinstance(raw, list):
        raise sources.fail(path, "expected [[folders]] entries")
    result: list[FolderSettings] = []
    for index, entry in enumerate(raw):
        where: ConfigPath = (*path, index)
        values = _table(sources, entry, where, ARRAYS[path])
        for required in ("name", "root"):
            if required not in values:
                raise sources.fail(where, f"{required} is required")
        if any(other.name == values["name"] for other in result):
            raise sources.fail((*where, "name"), f"duplicate folder name {values['name']!r}")
        result.append(FolderSettings(**values))
    return tuple(result)


def _static_users(sources: _Sources, raw: Any) -> tuple[StaticUser, ...]:
    path: tuple[str, ...] = ("users", "static")
    if not isinstance(raw, list):
        raise sources.fail(path, "expected [[users.static]] entries")
    users: list[StaticUser] = []
    seen: set[str] = set()
    for index, entry in enumerate(raw):
        where: ConfigPath = (*path, index)
        values = _table(sources, entry, where, ARRAYS[path])
        login = values.get("login")
        if login is None:
            raise sources.fail(where, "login is required")
        if login in seen:
            raise sources.fail((*where, "login"), f"duplicate login {login!r}")
        seen.add(login)
        anonymous = login in ANONYMOUS
        password_hash = values.get("password_hash")
        if password_hash is None and not anonymous:
            raise sources.fail(where, f"user {login!r} needs password_hash (make one with "
                                      "`gateway hash-password`); only \"anonymous\" logs in without")
        if password_hash is not None and not password_hash.startswith("$argon2"):
            raise sources.fail((*where, "password_hash"), "expected an argon2 hash (\"$argon2id$...\") "
                                                           "from `gateway hash-password`, never a clear password")
        home = values.get("home", "/")
        if not PurePosixPath(home).is_absolute():
            raise sources.fail((*where, "home"), f"must be absolute (start with /), got {home!r}")
        if "permissions" in values:
            permissions = _permissions(sources, (*where, "permissions"), values["permissions"])
        elif anonymous:
            permissions = (PermissionSettings("/", readable=True, writable=False),)
        else:
            permissions = ()
        users.append(StaticUser(
            login=login,
            password_hash=password_hash,
            root=values.get("root"),
            home=home,
            encoding=values.get("encoding"),
            permissions=permissions,
            max_connections=values.get("max_connections"),
            read_speed_limit=values.get("read_speed_limit"),
            write_speed_limit=values.get("write_speed_limit"),
            read_speed_limit_per_connection=values.get("read_speed_limit_per_connection"),
            write_speed_limit_per_connection=values.get("write_speed_limit_per_connection"),
            allow_from=values.get("allow_from", ()),
            deny_from=values.get("deny_from", ()),
            allow_names=values.get("allow_names", ()),
            deny_names=values.get("deny_names", ()),
            hide_denied=values.get("hide_denied", False),
            names_case_sensitive=values.get("names_case_sensitive", False),
            max_file_size=values.get("max_file_size"),
            **{name: values.get(name) for name in ("max_bytes", "max_files", "upload_per_day",
                                                   "upload_per_month", "download_per_day",
                                                   "download_per_month")},
            mounts=_mounts(sources, (*where, "mounts"), values.get("mounts", [])),
        ))
    return tuple(users)


def _listeners(sources: _Sources, raw: Any) -> tuple[ListenerSettings, ...]:
    path: tuple[str, ...] = ("listeners",)
    if not isinstance(raw, list) or not raw:
        raise sources.fail(path, "expected one or more [[listeners]] entries")
    listeners = []
    seen: set[tuple[str, int]] = set()
    for index, entry in enumerate(raw):
        values = _table(sources, entry, (*path, index), ARRAYS[path])
        listener = ListenerSettings(**values)
        address = (listener.host, listener.port)
        if listener.port and address in seen:
            raise sources.fail((*path, index, "port"), f"{listener.host}:{listener.port} is listed twice")
        seen.add(address)
        listeners.append(listener)
    return tuple(listeners)


def _events(sources: _Sources, raw: dict[str, Any]) -> EventSettings:
    """[events], [events.pre_upload] and the [[events.actions]] entries."""
    values = _section(sources, raw, ("events",))
    hook = PreUploadSettings(**_section(sources, raw, ("events", "pre_upload")))
    if hook.url and hook.command:
        raise sources.fail(("events", "pre_upload", "command"), "is set with url: give one of them")
    table = raw.get("events")
    entries = table.get("actions", []) if isinstance(table, dict) else []
    path: tuple[str, ...] = ("events", "actions")
    if not isinstance(entries, list):
        raise sources.fail(path, "expected [[events.actions]] entries")
    actions: list[EventAction] = []
    for index, entry in enumerate(entries):
        where: ConfigPath = (*path, index)
        found = _table(sources, entry, where, ARRAYS[path])
        kind = found.get("kind")
        if kind is None:
            raise sources.fail(where, "kind is required: \"webhook\" or \"command\"")
        needed = "url" if kind == "webhook" else "command"
        if needed not in found:
            raise sources.fail(where, f"a {kind} action needs {needed}")
        found.setdefault("name", f"{kind}-{index + 1}")
        if any(action.name == found["name"] for action in actions):
            raise sources.fail((*where, "name"), f"duplicate action name {found['name']!r}")
        actions.append(EventAction(**found))
    return EventSettings(**values, actions=tuple(actions), pre_upload=hook)


def _check_top_level(sources: _Sources, raw: dict[str, Any]) -> None:
    known = {table[0] for table in TABLES} | {table[0] for table in ARRAYS}
    for name in raw:
        if name not in known:
            raise sources.fail((name,), f"unknown table; known: {', '.join(sorted(known))}")


def _section(sources: _Sources, raw: dict[str, Any], table: tuple[str, ...]) -> dict[str, Any]:
    node: Any = raw
    for part in table:
        if not isinstance(node, dict):
            return {}
        node = node.get(part, {})
    nested = [t[len(table)] for t in [*TABLES, *ARRAYS, *FREE_TABLES]
              if len(t) == len(table) + 1 and t[: len(table)] == table]
    return _table(sources, node, table, TABLES[table], nested)


def build_settings(raw: dict[str, Any], sources: _Sources) -> Settings:
    _check_top_level(sources, raw)
    server = _section(sources, raw, ("server",))
    tls = TlsSettings(**_section(sources, raw, ("tls",)))
    passive = PassiveSettings(**_section(sources, raw, ("passive",)))
    users_table = _section(sources, raw, ("users",))
    database = DatabaseUsers(**_section(sources, raw, ("users", "database")))
    static_raw = raw.get("users", {}).get("static") if isinstance(raw.get("users"), dict) else None
    static = _static_users(sources, static_raw) if static_raw is not None else ()
    source = users_table.get("source") or ("static" if static else "database")
    if database.stale_after <= database.heartbeat_interval:
        raise sources.fail(("users", "database", "stale_after"),
                           "must be longer than heartbeat_interval")
    if source == "static" and not static:
        raise sources.fail(("users", "source"), "is \"static\" but no [[users.static]] entry is given")
    folders = _folders(sources, raw["folders"]) if "folders" in raw else ()
    for index, user in enumerate(static):
        for number, mounted in enumerate(user.mounts):
            if not any(folder.name == mounted.folder for folder in folders):
                raise sources.fail(("users", "static", index, "mounts", number, "folder"),
                                   f"no [[folders]] entry is named {mounted.folder!r}")
    storage_values = _section(sources, raw, ("storage",))
    options = raw.get("storage", {}).get("options", {}) if isinstance(raw.get("storage"), dict) else {}
    if not isinstance(options, dict):
        raise sources.fail(("storage", "options"), "expected a table of storage options")
    storage = StorageSettings(
        root=storage_values.get("root", StorageSettings.root),
        fsync=storage_values.get("fsync", StorageSettings.fsync),
        stale_temporary_age=storage_values.get(
            "stale_temporary_age", StorageSettings.stale_temporary_age
        ),
        upload_checksums=storage_values.get("upload_checksums", StorageSettings.upload_checksums),
        options=dict(options),
    )
    limits = LimitSettings(**_section(sources, raw, ("limits",)))
    logging_settings = LoggingSettings(**_section(sources, raw, ("logging",)))
    metrics = MetricsSettings(**_section(sources, raw, ("metrics",)))
    events = _events(sources, raw)
    listeners = _listeners(sources, raw["listeners"]) if "listeners" in raw else (ListenerSettings(),)

    for index, listener in enumerate(listeners):
        if listener.tls in ("explicit", "implicit") and not tls.configured:
            raise sources.fail(("listeners", index, "tls"),
                               f"is \"{listener.tls}\" but [tls] cert is not set")
        if listener.require_tls and listener.tls == "none":
            raise sources.fail(("listeners", index, "require_tls"), "is true on a listener without TLS")
        if listener.proxy_protocol != "off" and not listener.proxy_trusted:
            raise sources.fail(("listeners", index, "proxy_protocol"),
                               f"is \"{listener.proxy_protocol}\" but proxy_trusted is not set: "
                               "list the load balancers' addresses or networks")
        if listener.proxy_trusted and listener.proxy_protocol == "off":
            raise sources.fail(("listeners", index, "proxy_trusted"),
                               "is set but proxy_protocol is off: say which header the "
                               "balancers send (v1, v2 or any)")
    if tls.require and not tls.configured:
        raise sources.fail(("tls", "require"), "is true but [tls] cert is not set")
    for name in ("cert", "key"):
        file = getattr(tls, name)
        if file is not None and not file.is_file():
            raise sources.fail(("tls", name), f"file {file} does not exist")
    if tls.key is not None and tls.cert is None:
        raise sources.fail(("tls", "key"), "is set but [tls] cert is not")
    quirks = server.get("device_quirks", ())
    if quirks:
        from gateway.server.quirks import DeviceQuirks

        try:
            DeviceQuirks.from_names(quirks)
        except ValueError as exc:
            raise sources.fail(("server", "device_quirks"), str(exc)) from None
    return Settings(
        listeners=listeners,
        tls=tls,
        passive=passive,
        users=UsersSettings(
            source=source, database=database, static=static,
            **{k: val for k, val in users_table.items() if k != "source"},
        ),
        storage=storage,
        limits=limits,
        logging=logging_settings,
        metrics=metrics,
        folders=folders,
        events=events,
        shutdown_grace=server.get("shutdown_grace", Settings.shutdown_grace),
        welcome_message=server.get("welcome_message", Settings.welcome_message),
        device_quirks=tuple(quirks),
        allow_fxp=tuple(server.get("allow_fxp", ())),
        strict_rfc=server.get("strict_rfc", Settings.strict_rfc),
        allow_from=server.get("allow_from", ()),
        deny_from=server.get("deny_from", ()),
        run_as=server.get("run_as"),
        source=str(sources.file) if sources.file else None,
    )


def load_settings(
    config_file: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Settings:
    """Settings from a TOML file (optional), the environment, and flags, in that order.

    ``flags`` maps the command line's names (``host``, ``port``, ``root``,
    ``database_url``) to values; None values are ignored.
    """
    env = os.environ if env is None else env
    if config_file is None and env.get("GATEWAY_CONFIG"):
        config_file = env["GATEWAY_CONFIG"]
    if config_file is not None:
        file = Path(config_file)
        raw, text = _read_file(file)
    else:
        file, raw, text = None, {}, ""
    sources = _Sources(file, text)
    overrides = _environment_overrides(env)
    flag_paths: dict[str, ConfigPath] = {
        "host": ("listeners", 0, "host"),
        "port": ("listeners", 0, "port"),
        "root": ("storage", "root"),
        "database_url": ("users", "database", "url"),
        "log_level": ("logging", "level"),
        "log_format": ("logging", "format"),
    }
    for name, value in (flags or {}).items():
        if value is None:
            continue
        if name not in flag_paths:
            raise ConfigError(f"unknown flag {name!r}")
        overrides.append((flag_paths[name], value, "--" + name.replace("_", "-")))
    for path, value, origin in overrides:
        if path[0] == "listeners" and not isinstance(raw.get("listeners"), list):
            raw["listeners"] = [{}]
        _set(raw, path, value)
        sources.overrides[path] = origin
    return build_settings(raw, sources)
