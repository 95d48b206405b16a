"""Who may log in and what they may do where (aioftp's ``User`` and ``Permission``)."""

from __future__ import annotations

import codecs
from collections.abc import Iterable
from pathlib import Path, PurePath, PurePosixPath

from backends.errors import PathIsNotAbsolute
from backends.mounts import Mount
from gateway.users.addresses import AddressRules
from gateway.users.filerules import FileRules
from gateway.users.quotas import Quota

__all__ = ("Mount", "Permission", "User")


def _parts(path: PurePosixPath | str) -> tuple[str, ...]:
    return (path if isinstance(path, PurePath) else PurePosixPath(path)).parts


def _listed(values: Iterable[str] | str | None) -> tuple[str, ...]:
    """Patterns as a tuple; one string is one pattern (not its characters)."""
    if values is None:
        return ()
    if isinstance(values, str):
        return (values,)
    return tuple(values)


class Permission:
    """Rights on a virtual path and everything below it.

    :param path: virtual path the rights apply to
    :param readable: may list, read and enter
    :param writable: may create, change, rename and delete
    """

    __slots__ = ("_path", "_parts", "readable", "writable")

    def __init__(
        self,
        path: str | PurePosixPath = "/",
        *,
        readable: bool = True,
        writable: bool = True,
    ) -> None:
        self.path = path  # the setter normalizes
        self.readable = readable
        self.writable = writable

    @property
    def path(self) -> PurePosixPath:
        return self._path

    @path.setter
    def path(self, value: str | PurePosixPath) -> None:
        # The parts are cached because get_permissions compares them on every command.
        self._path = PurePosixPath(value)
        self._parts = self._path.parts

    def is_parent(self, other: PurePosixPath) -> bool:
        """Whether ``other`` is this permission's path or below it.

        Whole parts are compared, so ``/foo`` covers ``/foo/bar`` but not ``/foobar``.
        """
        parts = self._parts
        return _parts(other)[: len(parts)] == parts

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.path)!r}, "
            f"readable={self.readable!r}, writable={self.writable!r})"
        )


class User:
    """An account: credentials, where its files live, its rights and its limits.

    ``base_path`` is the real root of the user's files.  A string containing ``://``
    is a storage URL (``s3://bucket/prefix``, ``memory://``, ``file:///srv/ftp``) and is
    kept as the string for the backend registry to interpret; anything else becomes a
    ``pathlib.Path`` as in aioftp.  ``home_path`` is the virtual directory a session
    starts in and must be absolute.

    ``encoding`` is the code page this account's file names travel in (``"cp1251"``
    for a camera naming files in Cyrillic); None means the listener's encoding.  It is
    checked here so that a typo fails when the account is made, not at its first login.

    The keyword arguments after ``encoding`` are the account's storage policy; left
    out, the user behaves exactly as aioftp's:

    * ``allow_from`` / ``deny_from``: client networks (CIDR strings, IPv4 or IPv6) the
      account may log in from; a denied network wins, an empty allow list allows all.
      Kept as ``user.addresses`` (:class:`~gateway.users.addresses.AddressRules`).
    * ``allow_names`` / ``deny_names``: file name patterns (``*.exe``) the account may
      or may not create; ``hide_denied`` also hides denied names from it;
      ``names_case_sensitive`` matches patterns with regard to case;
      ``max_file_size``: bytes an upload may make a file at most.  Kept as
      ``user.file_rules`` (:class:`~gateway.users.filerules.FileRules`).
    * ``max_bytes`` / ``max_files``: what the account's files may hold together;
      ``upload_per_day``, ``upload_per_month``, ``download_per_day``,
      ``download_per_month``: bytes moved per UTC day or month.  Kept as
      ``user.quota`` (:class:`~gateway.users.quotas.Quota`); the usage is counted in
      the server process's memory.
    * ``mounts``: folders (:class:`~backends.mounts.Mount`) at virtual paths of the
      user's tree, ``base_path`` being the one at ``/`` unless a mount is there.  A
      read-only mount also makes its path non-writable in ``permissions`` (unless a
      rule there is already stricter), so writes are refused before storage is asked.

    Bad values fail here, when the account is made, with a ``ValueError``.

    Users compare and hash by identity: managers key per-user state (connection slots,
    throttles) by the user object.
    """

    def __init__(
        self,
        login: str | None = None,
        password: str | None = None,
        *,
        base_path: str | Path = Path("."),
        home_path: str | PurePosixPath = PurePosixPath("/"),
        permissions: Iterable[Permission] | None = None,
        maximum_connections: int | None = None,
        read_speed_limit: int | None = None,
        write_speed_limit: int | None = None,
        read_speed_limit_per_connection: int | None = None,
        write_speed_limit_per_connection: int | None = None,
        encoding: str | None = None,
        allow_from: Iterable[str] | str | None = None,
        deny_from: Iterable[str] | str | None = None,
        allow_names: Iterable[str] | str | None = None,
        deny_names: Iterable[str] | str | None = None,
        hide_denied: bool = False,
        names_case_sensitive: bool = False,
        max_file_size: int | None = None,
        mounts: Iterable[Mount] | None = None,
        max_bytes: int | None = None,
        max_files: int | None = None,
        upload_per_day: int | None = None,
        upload_per_month: int | None = None,
        download_per_day: int | None = None,
        download_per_month: int | None = None,
    ) -> None:
        self.login = login
        self.password = password
        if isinstance(base_path, str) and "://" in base_path:
            self.base_path: str | Path = base_path
        else:
            self.base_path = Path(base_path)
        self.home_path = PurePosixPath(home_path)
        if not self.home_path.is_absolute():
            raise PathIsNotAbsolute(home_path)
        self.permissions = list(permissions) if permissions else [Permission()]
        #: folders mounted in this user's tree (empty: the tree is ``base_path``)
        self.mounts: tuple[Mount, ...] = tuple(mounts or ())
        if self.mounts:
            self.permissions = _read_only_mounts(self.permissions, self.mounts)
        self.maximum_connections = maximum_connections
        self.read_speed_limit = read_speed_limit
        self.write_speed_limit = write_speed_limit
        self.read_speed_limit_per_connection = read_speed_limit_per_connection
        self.write_speed_limit_per_connection = write_speed_limit_per_connection
        if encoding is not None:
            try:
                codecs.lookup(encoding)
            except LookupError:
                raise ValueError(f"unknown encoding {encoding!r}") from None
        self.encoding = encoding
        #: networks this account may log in from
        self.addresses = AddressRules.parse(allow_from, deny_from)
        #: file names it may create or see, and its largest upload
        self.file_rules = FileRules(
            allow=_listed(allow_names),
            deny=_listed(deny_names),
            hide_denied=hide_denied,
            case_sensitive=names_case_sensitive,
            max_file_size=max_file_size,
        )
        #: what its files may hold and how much it may move
        self.quota = Quota(
            max_bytes=max_bytes,
            max_files=max_files,
            upload_per_day=upload_per_day,
            upload_per_month=upload_per_month,
            download_per_day=download_per_day,
            download_per_month=download_per_month,
        )

    async def get_permissions(self, path: str | PurePosixPath) -> Permission:
        """The permission of the nearest parent of ``path``.

        The most specific rule wins (``/pub/incoming`` over ``/pub`` over ``/``); among
        rules for the same path the first one listed wins.  With no rule covering
        ``path`` the result is aioftp's default, a read/write ``Permission()``: list a
        ``Permission("/", ...)`` to choose what unlisted paths get.
        """
        target = _parts(path)
        best: Permission | None = None
        best_len = -1
        for permission in self.permissions:
            parts = permission._parts
            n = len(parts)
            if n > best_len and target[:n] == parts:
                best, best_len = permission, n
        return best if best is not None else Permission()

    def __repr__(self) -> str:
        # The password is never shown: reprs end up in logs.
        password = None if self.password is None else "***"
        return (
            f"{type(self).__name__}({self.login!r}, {password!r}, "
            f"base_path={self.base_path!r}, home_path={self.home_path!r}, "
            f"permissions={self.permissions!r}, "
            f"maximum_connections={self.maximum_connections!r}, "
            f"read_speed_limit={self.read_speed_limit!r}, "
            f"write_speed_limit={self.write_speed_limit!r}, "
            f"read_speed_limit_per_connection={self.read_speed_limit_per_connection!r}, "
            f"write_speed_limit_per_connection={self.write_speed_limit_per_connection!r}, "
            f"encoding={self.encoding!r}{self._policy_repr()})"
        )

    def _policy_repr(self) -> str:
        """The storage policy's arguments that differ from the defaults (none: aioftp's repr)."""
        parts = []
        allowed, denied = self.addresses.as_text()
        rules = self.file_rules
        for name, value, default in (
            ("allow_from", allowed, []),
            ("deny_from", denied, []),
            ("allow_names", list(rules.allow), []),
            ("deny_names", list(rules.deny), []),
            ("hide_denied", rules.hide_denied, False),
            ("names_case_sensitive", rules.case_sensitive, False),
            ("max_file_size", rules.max_file_size, None),
            ("mounts", list(self.mounts), []),
        ):
            if value != default:
                parts.append(f", {name}={value!r}")
        for name, value in self.quota.as_dict().items():
            if value is not None:
                parts.append(f", {name}={value!r}")
        return "".join(parts)


def _read_only_mounts(permissions: list[Permission], mounts: Iterable[Mount]) -> list[Permission]:
    """``permissions`` with every rule at or below a read-only mount made non-writable,
    and a non-writable rule at the mount path where none is (readable as its nearest
    parent rule says)."""
    result = list(permissions)
    for mount in mounts:
        if not mount.read_only:
            continue
        path = PurePosixPath(mount.path)
        parts = path.parts
        exact = False
        for index, permission in enumerate(result):
            if permission._parts[: len(parts)] != parts:
                continue
            exact = exact or permission._parts == parts
            if permission.writable:
                result[index] = Permission(permission.path, readable=permission.readable, writable=False)
        if not exact:
            nearest = max(
                (p for p in result if parts[: len(p._parts)] == p._parts),
                key=lambda p: len(p._parts),
                default=Permission(),
            )
            result.append(Permission(path, readable=nearest.readable, writable=False))
    return result
