"""The validated settings of ``gateway serve``: plain frozen dataclasses.

Everything here is already checked; building servers from it cannot fail on a
value's shape, only on the outside world (a port in use, a database down).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = (
    "DatabaseUsers",
    "EventAction",
    "EventSettings",
    "FolderSettings",
    "ListenerSettings",
    "LoggingSettings",
    "LimitSettings",
    "MetricsSettings",
    "MountSettings",
    "PassiveSettings",
    "PermissionSettings",
    "PreUploadSettings",
    "Settings",
    "StaticUser",
    "StorageSettings",
    "TlsSettings",
    "UsersSettings",
)


@dataclass(frozen=True)
class ListenerSettings:
    """One listening socket.

    ``tls``: "auto" (AUTH TLS offered when a certificate is configured), "none",
    "explicit" (AUTH TLS) or "implicit" (TLS from the first byte, usually port 990).
    ``proxy_protocol`` / ``proxy_trusted``: behind a load balancer, the PROXY
    protocol header its connections start with, and who may send one.
    """

    host: str = "127.0.0.1"
    port: int = 2121
    tls: str = "auto"
    #: None: the [tls] section's ``require`` decides
    require_tls: bool | None = None
    encoding: str = "utf-8"
    #: the PROXY protocol header read from the trusted balancers: off, v1, v2 or any
    proxy_protocol: str = "off"
    #: the balancers' networks (CIDR strings) whose header names the client
    proxy_trusted: tuple[str, ...] = ()


@dataclass(frozen=True)
class TlsSettings:
    cert: Path | None = None
    key: Path | None = None
    #: refuse login and data transfers without TLS on listeners with explicit TLS
    require: bool = False
    #: the data connection must resume the control connection's TLS session
    require_session_reuse: bool = False
    min_version: str = "1.2"
    #: seconds a PROT P data connection has to finish its TLS handshake
    data_handshake_timeout: float = 15.0

    @property
    def configured(self) -> bool:
        return self.cert is not None


@dataclass(frozen=True)
class PassiveSettings:
    ports: range | None = None
    #: the IPv4 address announced in 227 replies (behind NAT, in containers)
    address: str | None = None
    #: seconds a passive listener waits for its transfer
    listen_timeout: float = 60.0


@dataclass(frozen=True)
class PermissionSettings:
    path: str = "/"
    readable: bool = True
    writable: bool = True


@dataclass(frozen=True)
class MountSettings:
    """A folder mounted at ``path`` of a static user's tree (``mounts = [...]``)."""

    path: str
    folder: str
    #: None: the folder's own ``read_only``
    read_only: bool | None = None


@dataclass(frozen=True)
class FolderSettings:
    """A [[folders]] entry: a named storage root static users may mount."""

    name: str
    root: str
    options: dict[str, Any] = field(default_factory=dict, hash=False)
    #: the default of the mounts that do not say
    read_only: bool = False
    description: str | None = None


@dataclass(frozen=True)
class StaticUser:
    """A user listed in the configuration file; ``login`` None is anonymous."""

    login: str | None
    password_hash: str | None = None
    root: str | None = None
    home: str = "/"
    encoding: str | None = None
    permissions: tuple[PermissionSettings, ...] = ()
    max_connections: int | None = None
    read_speed_limit: int | None = None
    write_speed_limit: int | None = None
    read_speed_limit_per_connection: int | None = None
    write_speed_limit_per_connection: int | None = None
    #: client networks (CIDR strings) the user may log in from, and may not
    allow_from: tuple[str, ...] = ()
    deny_from: tuple[str, ...] = ()
    #: file name patterns new files must match, and names nothing may be created under
    allow_names: tuple[str, ...] = ()
    deny_names: tuple[str, ...] = ()
    #: denied names are also hidden from listings and unreachable
    hide_denied: bool = False
    names_case_sensitive: bool = False
    #: bytes an upload may make a file at most
    max_file_size: int | None = None
    #: quotas: bytes and files kept, bytes moved per UTC day and month
    max_bytes: int | None = None
    max_files: int | None = None
    upload_per_day: int | None = None
    upload_per_month: int | None = None
    download_per_day: int | None = None
    download_per_month: int | None = None
    #: folders mounted in the user's tree
    mounts: tuple[MountSettings, ...] = ()


@dataclass(frozen=True)
class DatabaseUsers:
    url: str | None = None  # None: GATEWAY_DATABASE_URL or the embedded SQLite file
    cache_ttl: float = 5.0
    query_timeout: float = 5.0
    #: how often this node marks its sessions alive in the database, and after how
    #: long without a mark another node's sessions stop counting against limits
    heartbeat_interval: float = 10.0
    stale_after: float = 60.0


@dataclass(frozen=True)
class UsersSettings:
    #: "database" (the default) or "static" (the users listed in the file)
    source: str = "database"
    database: DatabaseUsers = field(default_factory=DatabaseUsers)
    static: tuple[StaticUser, ...] = ()
    #: brute-force protection, per client address: first delay (doubled per failure),
    #: its cap, failures before a ban, the ban's length
    failure_delay: float = 0.25
    failure_delay_max: float = 8.0
    ban_after: int = 10
    ban_duration: float = 600.0
    #: failures and bans count per network: IPv4 /32 and IPv6 /64 by default
    ban_prefix_ipv4: int = 32
    ban_prefix_ipv6: int = 64
    #: many addresses guessing one login: its password logins locked for a while
    account_lock_after: int = 50
    account_lock_duration: float = 300.0
    #: password hashing threads (None: half the CPUs) and how many checks may queue
    hash_workers: int | None = None
    hash_queue: int = 64


@dataclass(frozen=True)
class StorageSettings:
    #: where users without a root of their own live: ``<root>/<login>``
    root: str = "var/ftp"
    #: local roots: each upload is on disk (fsync) before the 226 acknowledges it
    fsync: bool = True
    #: seconds after which an upload's temporary that nothing holds counts as left by a
    #: killed process, and start-up recovery removes it (or rolls its file back).  Far
    #: above socket_timeout: an upload on another node sharing the storage, whose file
    #: lock this node may not see, changes its temporary far more often than that.
    stale_temporary_age: float = 3600.0
    #: algorithm keys an upload of a whole file is hashed with, kept with the file
    #: (``Server(upload_checksums=...)``); empty: off
    upload_checksums: tuple[str, ...] = ("sha256",)
    #: options for URL roots (``s3://``, fsspec): shared keys, plus sections keyed by
    #: a scheme or root prefix (``"s3://bucket/alice"``) merged over them
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LimitSettings:
    max_connections: int | None = None
    max_connections_per_address: int | None = None
    read_speed_limit: int | None = None
    write_speed_limit: int | None = None
    read_speed_limit_per_connection: int | None = None
    write_speed_limit_per_connection: int | None = None
    login_timeout: float | None = 60.0
    idle_timeout: float | None = 900.0
    socket_timeout: float | None = 300.0
    storage_timeout: float | None = None
    max_line_length: int = 4096
    #: the most HASH and the legacy checksum commands read for a checksum not stored
    hash_max_size: int | None = None


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "info"
    #: "text" or "json" (one object per line)
    format: str = "text"
    #: None: standard error
    file: Path | None = None
    #: transfer log in the xferlog format; None: no transfer log
    xferlog: Path | None = None


@dataclass(frozen=True)
class MetricsSettings:
    #: (host, port) of the Prometheus endpoint; None: no endpoint
    listen: tuple[str, int] | None = None


@dataclass(frozen=True)
class EventAction:
    """One [[events.actions]] entry: where the events it selects are delivered."""

    name: str
    #: "webhook" (POST to ``url``) or "command" (run ``command`` with the event on stdin)
    kind: str
    events: tuple[str, ...] = ("upload",)
    accounts: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    url: str | None = None
    secret: str | None = None
    timeout: float = 10.0
    headers: tuple[tuple[str, str], ...] = ()
    command: tuple[str, ...] = ()


@dataclass(frozen=True)
class PreUploadSettings:
    """[events.pre_upload]: an endpoint or command that may refuse an upload."""

    url: str | None = None
    command: tuple[str, ...] = ()
    secret: str | None = None
    timeout: float = 5.0
    fail_open: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    refuse_code: str = "550"

    @property
    def configured(self) -> bool:
        return bool(self.url or self.command)


@dataclass(frozen=True)
class EventSettings:
    """[events]: the outbox and its delivery (see ``gateway.events``)."""

    #: None: on when an action or a pre-upload hook is configured
    enabled: bool | None = None
    #: None: the accounts database, or the embedded file with static users
    database_url: str | None = None
    #: this node's name in events and claims; None: the host name
    node_name: str | None = None
    poll_interval: float = 1.0
    retry_base: float = 1.0
    retry_max: float = 300.0
    #: None: no limit
    max_attempts: int | None = 20
    max_age: float | None = 86400.0
    lease: float = 60.0
    concurrency: int = 8
    actions: tuple[EventAction, ...] = ()
    pre_upload: PreUploadSettings = field(default_factory=PreUploadSettings)

    @property
    def active(self) -> bool:
        return self.enabled is not False and bool(self.actions or self.pre_upload.configured)


@dataclass(frozen=True)
class Settings:
    listeners: tuple[ListenerSettings, ...] = (ListenerSettings(),)
    tls: TlsSettings = field(default_factory=TlsSettings)
    passive: PassiveSettings = field(default_factory=PassiveSettings)
    users: UsersSettings = field(default_factory=UsersSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    #: [[folders]]: storage roots static users mount in their tree
    folders: tuple[FolderSettings, ...] = ()
    events: EventSettings = field(default_factory=EventSettings)
    #: seconds running transfers get to finish on SIGTERM/SIGINT before 421
    shutdown_grace: float = 30.0
    welcome_message: str = "gateway FTP server ready"
    #: legacy device switches (``gateway.server.quirks.DeviceQuirks`` field names)
    device_quirks: tuple[str, ...] = ()
    #: logins allowed site-to-site (FXP) transfers; ("*",) for everyone
    allow_fxp: tuple[str, ...] = ()
    #: the RFCs' replies where aioftp's differ (``Server(strict_rfc=...)``)
    strict_rfc: bool = True
    #: client networks (CIDR strings) that may connect at all, and that may not
    allow_from: tuple[str, ...] = ()
    deny_from: tuple[str, ...] = ()
    #: (user, group or None) to switch to once the listeners are bound
    run_as: tuple[str, str | None] | None = None
    #: where the file came from, for messages
    source: str | None = None
