"""The high level FTP client: files, directories, listings and transfers.

Every method is a short sequence of commands on top of ``BaseClient``; transfers
move blocks straight between the data connection and ``path_io`` with no per-byte
work, so large files cost only the block loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl as ssl_module
from collections.abc import AsyncIterator
from pathlib import Path, PurePath, PurePosixPath
from types import TracebackType
from typing import Any

from gateway import errors
from gateway.client import parsers
from gateway.client.active import ActiveListener
from gateway.client.base import BaseClient, Codes
from gateway.common import (
    DEFAULT_ACCOUNT,
    DEFAULT_BLOCK_SIZE,
    DEFAULT_PASSWORD,
    DEFAULT_PORT,
    DEFAULT_USER,
    AbstractAsyncLister,
    Code,
    async_enterable,
)
from gateway.streams import ThrottleStreamIO

__all__ = ("Client", "DataConnectionThrottleStreamIO")

PathLike = str | PurePath

_SKIPPED_NAMES = frozenset({".", ".."})
_SKIPPED_TYPES = frozenset({"cdir", "pdir"})


class DataConnectionThrottleStreamIO(ThrottleStreamIO):
    """A data connection that knows its control connection.

    A transfer is done only when the server says so on the control connection, so
    leaving the ``async with`` block reads that final reply; on an exception the
    data connection is just closed and the reply is left to whoever handles it.
    """

    def __init__(self, client: BaseClient, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client = client

    async def finish(self, expected_codes: Codes = "2xx", wait_codes: Codes = "1xx") -> None:
        """Close the data connection and read the transfer's final reply."""
        self.close()
        await self.client.command(None, expected_codes, wait_codes)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.finish()
        else:
            self.close()


class _Lister(AbstractAsyncLister):
    """MLSD (or LIST) of one directory, breadth first through subdirectories
    when recursive; one data connection at a time, finished before the next."""

    def __init__(
        self, client: Client, path: PathLike, recursive: bool, raw_command: str | None
    ) -> None:
        super().__init__(timeout=client.socket_timeout)
        if raw_command not in (None, "MLSD", "LIST"):
            raise ValueError(f"raw_command must be None, 'MLSD' or 'LIST', not {raw_command!r}")
        self.client = client
        self.recursive = recursive
        self.raw_command = raw_command
        self.pending: collections.deque[PurePosixPath] = collections.deque([PurePosixPath(path)])
        self.stream: DataConnectionThrottleStreamIO | None = None
        self.directory = PurePosixPath(path)
        self.is_mlsd = True

    async def _open(self, directory: PurePosixPath) -> DataConnectionThrottleStreamIO:
        self.directory = directory
        argument = "" if str(directory) == "." else " " + str(directory)
        if self.raw_command in (None, "MLSD"):
            try:
                self.is_mlsd = True
                return await self.client.get_stream("MLSD" + argument, "1xx")
            except errors.StatusCodeError as e:
                unknown = any(c.matches("50x") for c in e.received_codes)
                if not unknown or self.raw_command is not None:
                    raise
        self.is_mlsd = False
        return await self.client.get_stream("LIST" + argument, "1xx")

    def _parse(self, line: bytes) -> tuple[PurePosixPath, dict] | None:
        if self.is_mlsd:
            name, info = self.client.parse_mlsx_line(line)
        else:
            text = line.strip()
            if not text or (text.startswith(b"total ") and text[6:].isdigit()):
                return None
            try:
                name, info = self.client.parse_list_line(line)
            except parsers.NotAnEntry:
                return None
        if str(name) in _SKIPPED_NAMES or info.get("type") in _SKIPPED_TYPES:
            return None
        return self.directory / name, info

    async def __anext__(self) -> tuple[PurePosixPath, dict]:
        try:
            while True:
                if self.stream is None:
                    if not self.pending:
                        raise StopAsyncIteration
                    self.stream = await self._open(self.pending.popleft())
                line = await self.stream.readline()
                if not line:
                    stream, self.stream = self.stream, None
                    await stream.finish()
                    continue
                entry = self._parse(line)
                if entry is None:
                    continue
                if self.recursive and entry[1].get("type") == "dir":
                    self.pending.append(entry[0])
                return entry
        except BaseException:
            if self.stream is not None:
                self.stream.close()
                self.stream = None
            raise


class Client(BaseClient):
    """FTP client with aioftp 0.28's high level API."""

    async def connect(self, host: str, port: int = DEFAULT_PORT) -> list[str]:
        """Connect and wait for the greeting (``120`` "wait" replies tolerated)."""
        await super().connect(host, port)
        _, info = await self._reply(None, "220", "120")
        return info

    async def upgrade_to_tls(self, sslcontext: ssl_module.SSLContext | None = None) -> None:
        """Explicit FTPS (RFC 4217) on the open control connection.

        Data connections then use TLS too, resuming the control connection's
        session as servers such as vsftpd and pyftpdlib may require.
        """
        if self.stream is None:
            raise ConnectionError("not connected")
        if self._data_ssl is not None:
            raise RuntimeError("the control connection already uses TLS")
        # Looked up on the module at call time, so it can be patched.
        context = sslcontext if sslcontext is not None else ssl_module.create_default_context()
        await self.command("AUTH TLS", "234")
        await self.stream.start_tls(sslcontext=context, server_hostname=self.server_host)
        self._data_ssl = context
        self._tls_session_source = self.stream.writer.get_extra_info("ssl_object")
        await self.command("PBSZ 0", "200")
        await self.command("PROT P", "200")

    async def login(
        self,
        user: str = DEFAULT_USER,
        password: str = DEFAULT_PASSWORD,
        account: str = DEFAULT_ACCOUNT,
    ) -> None:
        """USER, then PASS and ACCT as long as the server asks for them."""
        code, info = await self._reply("USER " + user, ("230", "33x"))
        while code.matches("33x"):
            if code == "331":
                code, info = await self._reply(
                    "PASS " + password, ("230", "202", "33x"), censor_after=5
                )
            elif code == "332":
                code, info = await self._reply(
                    "ACCT " + account, ("230", "202", "33x")
                )
            else:
                raise errors.StatusCodeError(Code("33x"), code, info)

    async def get_current_directory(self) -> PurePosixPath:
        _, info = await self._reply("PWD", "257")
        return self.parse_directory_response(info[-1])

    async def change_directory(self, path: PathLike = "..") -> None:
        path = PurePosixPath(path)
        command = "CDUP" if path == PurePosixPath("..") else "CWD " + str(path)
        await self.command(command, "2xx")

    async def make_directory(self, path: PathLike, *, parents: bool = True) -> None:
        """MKD, creating missing parents first unless ``parents`` is False."""
        path = PurePosixPath(path)
        missing = []
        while path.name and not await self.exists(path):
            missing.append(path)
            path = path.parent
            if not parents:
                break
        for directory in reversed(missing):
            await self.command("MKD " + str(directory), "257")

    async def _make_one_directory(self, path: PurePosixPath) -> None:
        # MKD first: in a fresh tree it succeeds, so the common case costs one
        # round trip; an existing directory (a repeated upload) is fine too.
        try:
            await self.command("MKD " + str(path), "257")
        except errors.StatusCodeError:
            if not await self.is_dir(path):
                raise

    async def remove_directory(self, path: PathLike) -> None:
        await self.command("RMD " + str(path), "2xx")

    def list(
        self, path: PathLike = "", *, recursive: bool = False, raw_command: str | None = None
    ) -> AbstractAsyncLister:
        """Entries of ``path`` as ``(path, info)``: iterate, or await for a list.

        MLSD unless the server does not know it (500/502), then LIST;
        ``raw_command`` forces one of them.
        """
        return _Lister(self, path, recursive, raw_command)

    async def stat(self, path: PathLike) -> dict:
        """MLST facts of ``path``; via a listing of its parent if MLST is unknown."""
        path = PurePosixPath(path)
        try:
            _, info = await self._reply("MLST " + str(path), "2xx")
        except errors.StatusCodeError as e:
            if not any(c.matches("50x") for c in e.received_codes):
                raise
        else:
            for line in info[1:-1] if len(info) > 2 else info:
                if "=" in line:
                    return self.parse_mlsx_line(line.lstrip())[1]
            raise errors.StatusCodeError(Code("2xx"), Code("250"), info)
        for entry, facts in await self.list(path.parent):
            if entry.name == path.name:
                return facts
        raise errors.StatusCodeError(Code("2xx"), Code("550"), "path does not exist")

    async def is_file(self, path: PathLike) -> bool:
        return (await self.stat(path)).get("type") == "file"

    async def is_dir(self, path: PathLike) -> bool:
        return (await self.stat(path)).get("type") == "dir"

    async def exists(self, path: PathLike) -> bool:
        """False on a 550 reply; other failures still raise."""
        try:
            await self.stat(path)
        except errors.StatusCodeError as e:
            if any(c.matches("550") for c in e.received_codes):
                return False
            raise
        return True

    async def rename(self, source: PathLike, destination: PathLike) -> None:
        await self.command("RNFR " + str(source), "350")
        await self.command("RNTO " + str(destination), "2xx")

    async def remove_file(self, path: PathLike) -> None:
        await self.command("DELE " + str(path), "2xx")

    async def remove(self, path: PathLike) -> None:
        """Remove a file, or a directory with everything in it; missing is fine."""
        try:
            info = await self.stat(path)
        except errors.StatusCodeError as e:
            if any(c.matches("550") for c in e.received_codes):
                return
            raise
        if info.get("type") == "dir":
            for entry, entry_info in await self.list(path):
                if entry_info.get("type") == "dir":
                    await self.remove(entry)
                else:
                    await self.remove_file(entry)
            await self.remove_directory(path)
        else:
            await self.remove_file(path)

    # --- streams ----------------------------------------------------------------

    def upload_stream(self, destination: PathLike, *, offset: int = 0) -> Any:
        """STOR; write the bytes into the returned stream (``async with`` it)."""
        return self.get_stream("STOR " + str(destination), "1xx", offset=offset)

    def append_stream(self, destination: PathLike, *, offset: int = 0) -> Any:
        return self.get_stream("APPE " + str(destination), "1xx", offset=offset)

    def download_stream(self, source: PathLike, *, offset: int = 0) -> Any:
        """RETR from ``offset``; read the returned stream until it ends."""
        return self.get_stream("RETR " + str(source), "1xx", offset=offset)

    async def get_passive_connection(
        self, conn_type: str = "I", commands: Any = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """TYPE, then EPSV/PASV (``commands`` or the client's default order)."""
        await self.command("TYPE " + conn_type, "200")
        return await self._open_data_connection(commands or self._passive_commands)

    @async_enterable
    async def get_stream(
        self, *command_args: Any, conn_type: str = "I", offset: int = 0
    ) -> DataConnectionThrottleStreamIO:
        """Open a data connection, then send the command (after REST if ``offset``)."""
        if not self.passive:
            return await self._get_active_stream(command_args, conn_type, offset)
        reader, writer = await self.get_passive_connection(conn_type)
        try:
            if offset:
                await self.command("REST " + str(offset), "350")
            await self.command(*command_args)
        except BaseException:
            writer.close()
            raise
        return DataConnectionThrottleStreamIO(
            self,
            reader,
            writer,
            throttles={"_": self.throttle},
            timeout=self.socket_timeout,
        )

    async def _get_active_stream(
        self, command_args: tuple, conn_type: str, offset: int
    ) -> DataConnectionThrottleStreamIO:
        """Active mode: listen, EPRT/PORT, REST, the command, then accept the server."""
        if self._siosocks_asyncio_kwargs.get("socks_host"):
            raise ValueError("active mode cannot work through a SOCKS proxy")
        await self.command("TYPE " + conn_type, "200")
        listener = ActiveListener(self)
        try:
            await listener.announce(self._active_commands)
            if offset:
                await self.command("REST " + str(offset), "350")
            await self.command(*command_args)
            reader, writer = await listener.accept(self._data_connection_ssl(), self.socket_timeout)
        finally:
            listener.close()
        return DataConnectionThrottleStreamIO(
            self,
            reader,
            writer,
            throttles={"_": self.throttle},
            timeout=self.socket_timeout,
        )

    async def abort(self, *, wait: bool = True) -> None:
        """ABOR; with ``wait``, read past the transfer's 426 to the ABOR reply."""
        if wait:
            await self.command("ABOR", ("225", "226"), "426")
        else:
            await self.command("ABOR")

    # --- whole files and trees ---------------------------------------------------

    async def _upload_file(self, source: Path, destination: PurePosixPath, block_size: int) -> None:
        async with (
            self.path_io.open(source, mode="rb") as file_in,
            self.upload_stream(destination) as stream,
        ):
            async for block in file_in.iter_by_block(block_size):
                await stream.write(block)

    async def upload(
        self,
        source: PathLike,
        destination: PathLike = "",
        *,
        write_into: bool = False,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> None:
        """Upload a local file or directory tree.

        Without ``write_into`` the source keeps its name inside ``destination``;
        with it, ``destination`` is the new name (the tree's contents go into it).
        """
        source = Path(source)
        destination = PurePosixPath(destination)
        if not write_into:
            destination = destination / source.name
        if await self.path_io.is_file(source):
            await self.make_directory(destination.parent)
            await self._upload_file(source, destination, block_size)
            return
        if not await self.path_io.is_dir(source):
            raise FileNotFoundError(f"no such local file or directory: {source}")
        await self.make_directory(destination)
        queue = collections.deque([source])
        while queue:
            directory = queue.popleft()
            async for local in self.path_io.list(directory):
                remote = destination / PurePosixPath(*local.relative_to(source).parts)
                if await self.path_io.is_dir(local):
                    await self._make_one_directory(remote)
                    queue.append(local)
                else:
                    await self._upload_file(local, remote, block_size)

    async def _download_file(
        self, source: PurePosixPath, destination: Path, block_size: int
    ) -> None:
        await self.path_io.mkdir(destination.parent, parents=True, exist_ok=True)
        async with (
            self.path_io.open(destination, mode="wb") as file_out,
            self.download_stream(source) as stream,
        ):
            async for block in stream.iter_by_block(block_size):
                await file_out.write(block)

    async def download(
        self,
        source: PathLike,
        destination: PathLike = "",
        *,
        write_into: bool = False,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> None:
        """Download a remote file or directory tree (``write_into`` as in ``upload``)."""
        source = PurePosixPath(source)
        destination = Path(destination)
        if not write_into:
            destination = destination / source.name
        kind = (await self.stat(source)).get("type")
        if kind == "file":
            await self._download_file(source, destination, block_size)
            return
        if kind != "dir":
            raise errors.StatusCodeError(Code("2xx"), Code("550"), f"{source} is not a file or dir")
        await self.path_io.mkdir(destination, parents=True, exist_ok=True)
        for remote, info in await self.list(source, recursive=True):
            local = destination.joinpath(*remote.relative_to(source).parts)
            if info.get("type") == "dir":
                await self.path_io.mkdir(local, parents=True, exist_ok=True)
            elif info.get("type") == "file":
                await self._download_file(remote, local, block_size)

    async def quit(self) -> None:
        """QUIT politely, then close."""
        await self.command("QUIT", "2xx")
        self.close()

    @classmethod
    @contextlib.asynccontextmanager
    async def context(
        cls,
        host: str,
        port: int = DEFAULT_PORT,
        user: str = DEFAULT_USER,
        password: str = DEFAULT_PASSWORD,
        account: str = DEFAULT_ACCOUNT,
        upgrade_to_tls: bool | ssl_module.SSLContext = False,
        **kwargs: Any,
    ) -> AsyncIterator[Client]:
        """Connected, logged in client for an ``async with`` block.

        On exit QUIT is attempted but a connection that already died does not
        turn a clean block into an error; the socket is closed either way.
        """
        client = cls(**kwargs)
        try:
            await client.connect(host, port)
            if upgrade_to_tls:
                context = (
                    upgrade_to_tls if isinstance(upgrade_to_tls, ssl_module.SSLContext) else None
                )
                await client.upgrade_to_tls(context)
            await client.login(user, password, account)
        except BaseException:
            client.close()
            raise
        try:
            yield client
        finally:
            try:
                await client.quit()
            except (TimeoutError, OSError, EOFError, errors.StatusCodeError):
                pass
            finally:
                client.close()
