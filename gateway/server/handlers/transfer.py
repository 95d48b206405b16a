"""Data transfers: TYPE, MODE, STRU, PASV, EPSV, REST, RETR, STOR, APPE, ABOR.

A transfer runs as a task in ``connection.extra_workers`` so the control
connection stays responsive (ABOR, NOOP) while bytes flow.  Storage writes are
transactional (see ``backends``): a transfer that ends in an error or an abort
leaves no partial file where a complete one is expected.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.errors import NoAvailablePort
from gateway.protocol.addresses import (
    UnsupportedProtocol,
    format_epsv,
    format_pasv_reply_address,
    parse_epsv_arg,
)
from gateway.protocol.ascii import FromNetwork, ToNetwork
from gateway.protocol.types import parse_mode, parse_stru, parse_type
from gateway.server.activemode import connect_active
from gateway.server.datachannel import open_passive_listener, sendfile
from gateway.server.events import TransferRecord
from gateway.server.handlers.base import HandlerBase

__all__ = ("TransferCommands", "DATA_BLOCK_SIZE")

logger = logging.getLogger("gateway.server")

#: Bytes moved per storage call; large so a transfer costs few Python-level steps.
DATA_BLOCK_SIZE = 262144
#: How long a finished data connection may take to close before we stop waiting.
DATA_CLOSE_TIMEOUT = 10.0
#: Random names STOU tries before giving up (a clash needs 2**32 luck each time).
STOU_ATTEMPTS = 8

Body = Callable[[Any], Awaitable[None]]


class TransferCommands(HandlerBase):
    # -- representation ------------------------------------------------------------------
    async def type(self, connection: Any, rest: str) -> bool:
        try:
            connection.transfer_type = parse_type(rest)
        except ValueError:
            connection.response("504", f"type {rest.strip()!r} not supported")
            return True
        connection.response("200", f"type set to {connection.transfer_type}")
        return True

    async def mode(self, connection: Any, rest: str) -> bool:
        try:
            parse_mode(rest)
        except ValueError:
            connection.response("504", "only MODE S is supported")
            return True
        connection.response("200", "mode S")
        return True

    async def stru(self, connection: Any, rest: str) -> bool:
        try:
            parse_stru(rest)
        except ValueError:
            connection.response("504", "only STRU F is supported")
            return True
        connection.response("200", "structure F")
        return True

    # -- data channel ----------------------------------------------------------------------
    async def pasv(self, connection: Any, rest: str) -> bool:
        if getattr(connection, "epsv_all", False):
            connection.response("503", "PASV not allowed after EPSV ALL")
            return True
        host = self.ipv4_pasv_forced_response_address or connection.server_host  # type: ignore[attr-defined]
        if not _ipv4_form(host):
            connection.response("425", "PASV is IPv4 only on this connection; use EPSV")
            return True
        port = await self._prepare_passive(connection)
        if port is None:
            return True
        connection.response("227", f"Entering Passive Mode {format_pasv_reply_address(host, port)}")
        return True

    async def epsv(self, connection: Any, rest: str) -> bool:
        try:
            argument = parse_epsv_arg(rest)
        except UnsupportedProtocol:
            connection.response("522", "protocol not supported, use (1,2)")
            return True
        except ValueError:
            connection.response("501", "EPSV takes 1, 2 or ALL")
            return True
        if argument.upper() == "ALL":
            connection.epsv_all = True
            connection.response("200", "EPSV ALL accepted")
            return True
        if argument:
            family_ok = (argument == "1") == (_ipv4_form(connection.server_host) is not None)
            if not family_ok:
                connection.response("522", "protocol not supported, use (1)" if _ipv4_form(connection.server_host) else "protocol not supported, use (2)")
                return True
        port = await self._prepare_passive(connection)
        if port is None:
            return True
        connection.response("229", f"Entering Extended Passive Mode {format_epsv(port)}")
        return True

    async def _prepare_passive(self, connection: Any) -> int | None:
        connection.active_address = None  # passive replaces an earlier PORT/EPRT
        if connection.data_connection is not None:
            connection.data_connection.close()
            del connection.data_connection
        try:
            return await open_passive_listener(connection)
        except NoAvailablePort:
            connection.response("421", "no free ports for a data connection")
        except OSError as exc:
            logger.warning("session %s: passive listener failed: %s", connection.id, exc)
            connection.response("425", "can't open a data connection")
        return None

    async def rest(self, connection: Any, rest: str) -> bool:
        text = rest.strip()
        if not text.isdigit():
            connection.response("501", "REST needs a non-negative integer")
            return True
        connection.restart_offset = int(text)
        connection.response("350", f"restarting at {connection.restart_offset}")
        return True

    # -- transfers -------------------------------------------------------------------------
    async def retr(self, connection: Any, rest: str) -> bool:
        real, virtual = await self.resolve(connection, rest)
        offset, connection.restart_offset = connection.restart_offset, 0
        path_io = connection.path_io
        if not await path_io.exists(real):
            connection.response("550", "path does not exists")
            return True
        if not await path_io.is_file(real):
            connection.response("550", "path is not a file")
            return True
        if not await self.can(connection, virtual, "readable"):
            return True
        ascii_mode = connection.transfer_type == "A"
        record = self.transfer_record(connection, "RETR", virtual)

        async def body(stream: Any) -> None:
            async with path_io.open(real, "rb") as file:
                if offset:
                    await file.seek(offset)
                raw = getattr(file, "raw_file", None)
                if (
                    raw is not None
                    and not ascii_mode
                    and not stream.throttles
                    and stream.writer.get_extra_info("ssl_object") is None
                    and stream.writer.get_extra_info("socket") is not None
                ):
                    await stream.writer.drain()
                    record.size += await sendfile(stream.writer, raw, offset, self.socket_timeout)  # type: ignore[attr-defined]
                    return
                convert = ToNetwork() if ascii_mode else None
                block = _block_size(self, stream)
                while True:
                    data = await file.read(block)
                    if not data:
                        break
                    out = convert.feed(data) if convert else data
                    await stream.write(out)
                    record.size += len(out)

        return self.start_transfer(connection, body, "150", "data transfer started", record)

    async def stor(self, connection: Any, rest: str) -> bool:
        return await self._store(connection, rest, append=False)

    async def appe(self, connection: Any, rest: str) -> bool:
        return await self._store(connection, rest, append=True)

    async def stou(self, connection: Any, rest: str) -> bool:
        """STOU: store under a name no file has yet; RFC 1123 4.1.2.9 reply
        ``150 FILE: name`` tells the client which."""
        base = rest.strip(" ") or "stou"
        if base.endswith("/"):
            base += "stou"
        path_io = connection.path_io
        candidate = base
        for _ in range(STOU_ATTEMPTS):
            real, _virtual = await self.resolve(connection, candidate)
            if not await path_io.exists(real):
                break
            candidate = f"{base}.{secrets.token_hex(4)}"
        else:
            connection.response("450", "could not find a unique name")
            return True
        connection.restart_offset = 0  # REST makes no sense for a new file
        return await self._store(connection, candidate, append=False, info=f"FILE: {candidate}")

    async def _store(self, connection: Any, rest: str, *, append: bool, info: str = "data transfer started") -> bool:
        real, virtual = await self.resolve(connection, rest)
        offset, connection.restart_offset = connection.restart_offset, 0
        path_io = connection.path_io
        if await path_io.is_dir(real):
            connection.response("550", "path is a directory")
            return True
        if not await self.can(connection, virtual, "writable"):
            return True
        if not await path_io.is_dir(real.parent):
            quirks = getattr(self, "device_quirks", None)
            if quirks is None or not quirks.stor_creates_parents or await path_io.exists(real.parent):
                connection.response("550", "no such directory")
                return True
            if not _data_channel_prepared(connection):
                # a transfer that cannot run creates nothing
                connection.response("503", NO_DATA_CHANNEL)
                return True
            await path_io.mkdir(real.parent, parents=True)
        exists = await path_io.exists(real)
        if append:
            mode = "ab" if exists else "wb"
        elif offset:
            if not exists:
                connection.response("550", "can't restart: file does not exist")
                return True
            size = (await path_io.stat(real)).st_size
            if offset > size:
                connection.response("554", f"restart offset {offset} is beyond the file's size {size}")
                return True
            mode = "r+b"
        else:
            mode = "wb"
        ascii_mode = connection.transfer_type == "A"
        record = self.transfer_record(connection, "APPE" if append else "STOR", virtual)

        async def body(stream: Any) -> None:
            async with path_io.open(real, mode) as file:
                if mode == "r+b":
                    await file.seek(offset)
                convert = FromNetwork() if ascii_mode else None
                write = file.write
                read_view = getattr(stream.reader, "read_view", None)
                if read_view is not None and not stream.throttles and convert is None:
                    # plain TCP, unthrottled: storage writes straight from the receive buffer
                    timeout = stream.read_timeout
                    while True:
                        if timeout is None:
                            view = await read_view()
                        else:
                            async with asyncio.timeout(timeout):
                                view = await read_view()
                        if view is None:
                            break
                        record.size += len(view)
                        await write(view)
                    return
                read = stream.read
                block = _block_size(self, stream)
                while True:
                    data = await read(block)
                    if not data:
                        break
                    record.size += len(data)
                    await write(convert.feed(data) if convert else data)
                if convert:
                    tail = convert.flush()
                    if tail:
                        await write(tail)

        return self.start_transfer(connection, body, "150", info, record)

    async def abor(self, connection: Any, rest: str) -> bool:
        workers = list(connection.extra_workers)
        if not workers:
            connection.response("226", "nothing to abort")
            return True
        for task in workers:
            task.cancel()
        await asyncio.wait(workers)
        return True

    # -- the transfer machinery --------------------------------------------------------------
    def transfer_record(self, connection: Any, command: str, virtual: Any) -> TransferRecord:
        """What the transfer log and metrics learn about this transfer when it ends."""
        user = connection.user
        return TransferRecord(
            command=command,
            direction="o" if command == "RETR" else "i",
            path=str(virtual),
            login=getattr(user, "login", None),
            client_host=connection.client_host,
            binary=connection.transfer_type != "A",
            backend=getattr(connection.path_io, "backend_name", type(connection.path_io).__name__),
        )

    def start_transfer(
        self, connection: Any, body: Body, code: str, info: str, record: TransferRecord | None = None
    ) -> bool:
        """Check a data channel is prepared, start ``body(stream)`` as a worker, reply 1xx."""
        if not _data_channel_prepared(connection):
            connection.response("503", NO_DATA_CHANNEL)
            return True
        if connection.extra_workers:
            connection.response("425", "a transfer is already in progress")
            return True
        task = connection.loop.create_task(self._run_transfer(connection, body, record))
        connection.extra_workers.add(task)
        connection.response(code, info)
        return True

    async def _run_transfer(self, connection: Any, body: Body, record: TransferRecord | None = None) -> None:
        if record is None:
            await self._run_transfer_body(connection, body)
            return
        record.started = time.time()
        status = "failed"
        try:
            await self._run_transfer_body(connection, body, record)
            status = record.status if record.status != "running" else "complete"
        except asyncio.CancelledError:
            status = "aborted"
            raise
        except (ConnectionError, TimeoutError):
            status = "aborted"
            raise
        finally:
            record.finish(status)
            self.notify("transfer", connection, record)  # type: ignore[attr-defined]

    async def _run_transfer_body(
        self, connection: Any, body: Body, record: TransferRecord | None = None
    ) -> None:
        try:
            stream = await self._wait_data_connection(connection)
            if stream is None:
                if record is not None:
                    record.status = "failed"  # no data connection: nothing moved
                return
            try:
                await body(stream)
            except BaseException:
                # aborted or failed: drop what is still buffered for the peer, or
                # closing would wait (up to DATA_CLOSE_TIMEOUT) for a reader that
                # stopped reading, and ABOR's 426/226 would wait with it
                stream.writer.transport.abort()
                raise
            finally:
                await _close_data(stream)
            connection.response("226", "transfer complete")
        except asyncio.CancelledError:
            if connection.closing:
                raise
            if record is not None:
                record.status = "aborted"
            connection.response("426", "transfer aborted")
            connection.response("226", "abort successful")

    async def _wait_data_connection(self, connection: Any) -> Any:
        stream = connection.data_connection
        active, connection.active_address = connection.active_address, None
        if stream is None and active is not None:
            if not await connect_active(connection, *active):
                connection.response("425", "can't open data connection")
                return None
            stream = connection.data_connection
        if stream is None:
            timeout = connection.wait_future_timeout
            try:
                async with asyncio.timeout(timeout):
                    while connection.data_connection is None:
                        if getattr(connection, "data_tls_refused", False):
                            break
                        connection.state_changed.clear()
                        await connection.state_changed.wait()
            except TimeoutError:
                pass
            stream = connection.data_connection
        if stream is None:
            if getattr(connection, "data_tls_refused", False):
                connection.data_tls_refused = False
                connection.response("522", "data connection must resume the TLS session")
            else:
                connection.response("425", "can't open data connection")
            return None
        del connection.data_connection
        return stream


NO_DATA_CHANNEL = "bad sequence of commands (use PASV, EPSV, PORT or EPRT first)"


def _data_channel_prepared(connection: Any) -> bool:
    """PASV/EPSV listening, PORT/EPRT given, or a data connection already open."""
    return not (
        connection.passive_server is None
        and connection.data_connection is None
        and connection.active_address is None
    )


def _block_size(server: Any, stream: Any) -> int:
    # A throttle only delays the block *after* the one that went over the limit, so
    # throttled transfers move small blocks (the server's block_size, aioftp's 8 KiB)
    # or a file smaller than one large block would pass unthrottled.
    if getattr(stream, "throttles", None):
        return min(DATA_BLOCK_SIZE, server.block_size)
    return DATA_BLOCK_SIZE


async def _close_data(stream: Any) -> None:
    stream.close()
    try:
        async with asyncio.timeout(DATA_CLOSE_TIMEOUT):
            await stream.writer.wait_closed()
    except (OSError, TimeoutError, ConnectionError):
        pass


def _ipv4_form(host: str) -> str | None:
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv4Address):
        return str(address)
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return None
