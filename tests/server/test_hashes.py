"""Checksums: computed as uploads stream, kept with the file, answered by HASH (the
draft-bryan-ftpext-hash command) and the legacy XCRC/XMD5/XSHA*, never stale.

Every answer is compared with hashlib/zlib over the bytes a RETR downloads.  "Answered
without reading the file" is proven by counting the reads of the storage's file
handles; "computed when absent" by files made behind the server's back.  Local disk
and memory roots run the same tests; S3 has its own in ``tests/s3``.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import backends.local
import backends.memory
from backends import PathIO, backend_for_root, localsums
from gateway import Permission, Server, User
from gateway.observe.xferlog import format_xferlog_line
from gateway.server.events import ServerEvents, TransferRecord
from gateway.server.hashing import INLINE_BYTES

from .conftest import STEP, RawClient, ftp_login, in_thread, retr_bytes

MIB = 1 << 20


def digest(name: str, data: bytes) -> str:
    if name == "crc32":
        return f"{zlib.crc32(data):08x}"
    return hashlib.new(name, data).hexdigest()


class Storage:
    """One kind of root: how to make a user on it, put a file behind the server's back,
    and count reads of file contents."""

    kind: str

    def user(self, **kwargs: Any) -> User:
        raise NotImplementedError

    async def put_outside(self, name: str, data: bytes) -> None:
        raise NotImplementedError

    @contextmanager
    def reads(self) -> Iterator[list[int]]:
        """A one-item list: the number of content reads made inside the block."""
        raise NotImplementedError


class LocalStorage(Storage):
    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def user(self, **kwargs: Any) -> User:
        return User(base_path=self.root, **kwargs)

    async def put_outside(self, name: str, data: bytes) -> None:
        (self.root / name).write_bytes(data)

    @contextmanager
    def reads(self) -> Iterator[list[int]]:
        count = [0]
        original = backends.local._LocalFile.read

        def counted(self: Any, block_size: int) -> bytes:
            count[0] += 1
            return original(self, block_size)

        backends.local._LocalFile.read = counted  # type: ignore[method-assign]
        try:
            yield count
        finally:
            backends.local._LocalFile.read = original  # type: ignore[method-assign]


class MemoryStorage(Storage):
    kind = "memory"

    def __init__(self) -> None:
        self.url = f"memory:///hashes-{uuid.uuid4().hex[:12]}"
        # every memory:// root is a view of one tree: this is the server's too
        factory, self.real_root = backend_for_root(self.url)
        self.path_io = factory()

    def user(self, **kwargs: Any) -> User:
        return User(base_path=self.url, **kwargs)

    async def put_outside(self, name: str, data: bytes) -> None:
        await self.path_io.mkdir(self.real_root, parents=True, exist_ok=True)
        async with self.path_io.open(self.real_root / name, "wb") as file:
            await file.write(data)

    @contextmanager
    def reads(self) -> Iterator[list[int]]:
        count = [0]
        original = backends.memory._MemoryFile.read

        def counted(self: Any, block_size: int) -> bytes:
            count[0] += 1
            return original(self, block_size)

        backends.memory._MemoryFile.read = counted  # type: ignore[method-assign]
        try:
            yield count
        finally:
            backends.memory._MemoryFile.read = original  # type: ignore[method-assign]


@pytest.fixture(params=["local", "memory"])
async def storage(request: pytest.FixtureRequest, root: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(root)
    memory = MemoryStorage()
    await memory.path_io.mkdir(memory.real_root, parents=True, exist_ok=True)
    return memory


@pytest.fixture
async def hashing_server(make_server: Callable[..., Any], storage: Storage) -> Server:
    server: Server = await make_server([storage.user()])
    return server


async def upload(port: int, name: str, data: bytes, command: str = "STOR") -> None:
    def scenario() -> None:
        ftp = ftp_login(port)
        try:
            ftp.storbinary(f"{command} {name}", io.BytesIO(data))
        finally:
            ftp.quit()

    await in_thread(scenario)


async def download(port: int, name: str) -> bytes:
    def scenario() -> bytes:
        ftp = ftp_login(port)
        try:
            return retr_bytes(ftp, name)
        finally:
            ftp.quit()

    result: bytes = await in_thread(scenario)
    return result


async def client(server: Server, raw_clients: list[RawClient]) -> RawClient:
    connection = await RawClient.connect(server.server_port)
    raw_clients.append(connection)
    await connection.login()
    return connection


def hash_value(reply: Any) -> str:
    """The hex digest of a ``213 <algorithm> <range> <hex> <path>`` reply."""
    assert reply.code == "213", reply
    return str(reply.lines[-1].split(" ")[2])


# ----------------------------------------------------------------------------- answers


async def test_every_command_agrees_with_hashlib(hashing_server: Server, storage: Storage,
                                                 raw_clients: list[RawClient]) -> None:
    data = os.urandom(3 * MIB + 12345)  # beyond the inline part: stages and threads
    port = hashing_server.server_port
    await upload(port, "data.bin", data)
    downloaded = await download(port, "data.bin")
    assert downloaded == data
    c = await client(hashing_server, raw_clients)
    reply = await c.expect("HASH data.bin", "213")
    assert reply.lines[-1] == f"SHA-256 0-{len(data) - 1} {digest('sha256', downloaded)} data.bin"
    for name, key in (("SHA-512", "sha512"), ("SHA-1", "sha1"), ("MD5", "md5"), ("CRC32", "crc32"),
                      ("SHA-256", "sha256")):
        assert (await c.expect(f"OPTS HASH {name}", "200")).text == name
        assert hash_value(await c.expect("HASH data.bin", "213")) == digest(key, downloaded)
    for verb, key in (("XCRC", "crc32"), ("XMD5", "md5"), ("XSHA", "sha1"), ("XSHA1", "sha1"),
                      ("XSHA256", "sha256"), ("XSHA512", "sha512")):
        reply = await c.expect(f"{verb} data.bin", "250")
        assert reply.text == digest(key, downloaded).upper(), verb


async def test_filezilla_style_opts_then_hash(hashing_server: Server, storage: Storage,
                                              raw_clients: list[RawClient]) -> None:
    data = os.urandom(100_000)
    await upload(hashing_server.server_port, "photo.jpg", data)
    c = await client(hashing_server, raw_clients)
    feat = await c.expect("FEAT", "211")
    assert " HASH SHA-256*;SHA-512;SHA-1;MD5;CRC32" in feat.lines
    assert (await c.expect("OPTS HASH", "200")).text == "SHA-256"
    assert (await c.expect("OPTS HASH SHA-256", "200")).text == "SHA-256"
    reply = await c.expect("HASH photo.jpg", "213")
    assert reply.text == f"SHA-256 0-99999 {digest('sha256', data)} photo.jpg"
    await c.expect("OPTS HASH md5", "200")
    assert " HASH SHA-256;SHA-512;SHA-1;MD5*;CRC32" in (await c.expect("FEAT", "211")).lines
    reply = await c.expect("OPTS HASH CRC-37", "501")
    assert reply.text == "Unknown algorithm, current selection not changed"
    assert (await c.expect("OPTS HASH", "200")).text == "MD5"
    await c.expect("REIN", "220")  # the draft: the selection lasts until REIN
    await c.login()
    assert (await c.expect("OPTS HASH", "200")).text == "SHA-256"


def test_ftplib_sees_one_line_replies(tmp_path: Path) -> None:
    """A plain client's view: ``sendcmd`` gets the 213 and the 250 as single lines."""
    (tmp_path / "f.txt").write_bytes(b"hello world\n")

    async def scenario() -> None:
        server = Server([User(base_path=tmp_path)])
        await server.start("127.0.0.1", 0)
        try:
            def talk() -> tuple[str, str]:
                ftp = ftp_login(server.server_port)
                try:
                    return ftp.sendcmd("HASH f.txt"), ftp.sendcmd("XCRC f.txt")
                finally:
                    ftp.quit()

            hashed, crc = await in_thread(talk)
        finally:
            await server.close()
        content = b"hello world\n"
        assert hashed == f"213 SHA-256 0-11 {digest('sha256', content)} f.txt"
        assert crc == f"250 {zlib.crc32(content):08X}"

    asyncio.run(scenario())


# ----------------------------------------------------------------------------- stored, computed


async def test_upload_checksums_answer_without_reading(hashing_server: Server, storage: Storage,
                                                       raw_clients: list[RawClient]) -> None:
    data = os.urandom(2 * MIB)
    await upload(hashing_server.server_port, "up.bin", data)
    c = await client(hashing_server, raw_clients)
    with storage.reads() as reads:
        assert hash_value(await c.expect("HASH up.bin", "213")) == digest("sha256", data)
        assert (await c.expect("XSHA256 up.bin", "250")).text == digest("sha256", data).upper()
    assert reads[0] == 0, "the stored checksums were not used"
    # CRC-32 is not computed by uploads unless configured: read once, then kept
    with storage.reads() as reads:
        assert (await c.expect("XCRC up.bin", "250")).text == digest("crc32", data).upper()
    assert reads[0] > 0
    with storage.reads() as reads:
        assert (await c.expect("XCRC up.bin", "250")).text == digest("crc32", data).upper()
        assert hash_value(await c.expect("HASH up.bin", "213")) == digest("sha256", data)
    assert reads[0] == 0


async def test_configured_algorithms_are_all_kept(make_server: Callable[..., Any], storage: Storage,
                                                  raw_clients: list[RawClient]) -> None:
    server = await make_server([storage.user()], upload_checksums=["sha256", "crc32", "md5"])
    data = os.urandom(INLINE_BYTES + 5 * MIB // 2)
    await upload(server.server_port, "up.bin", data)
    c = await client(server, raw_clients)
    with storage.reads() as reads:
        assert (await c.expect("XCRC up.bin", "250")).text == digest("crc32", data).upper()
        assert (await c.expect("XMD5 up.bin", "250")).text == digest("md5", data).upper()
        assert hash_value(await c.expect("HASH up.bin", "213")) == digest("sha256", data)
    assert reads[0] == 0


async def test_computed_when_absent_then_kept(hashing_server: Server, storage: Storage,
                                              raw_clients: list[RawClient]) -> None:
    data = os.urandom(MIB + 1)
    await storage.put_outside("outside.bin", data)
    c = await client(hashing_server, raw_clients)
    with storage.reads() as reads:
        assert (await c.expect("XMD5 outside.bin", "250")).text == digest("md5", data).upper()
    assert reads[0] > 0
    with storage.reads() as reads:
        # kept with the file: MD5, and what uploads compute, read in the same pass
        assert (await c.expect("XMD5 outside.bin", "250")).text == digest("md5", data).upper()
        assert hash_value(await c.expect("HASH outside.bin", "213")) == digest("sha256", data)
    assert reads[0] == 0


async def test_a_changed_file_never_answers_a_stale_checksum(
    hashing_server: Server, storage: Storage, raw_clients: list[RawClient]
) -> None:
    port = hashing_server.server_port
    c = await client(hashing_server, raw_clients)
    first = os.urandom(300_000)
    await upload(port, "f.bin", first)
    assert hash_value(await c.expect("HASH f.bin", "213")) == digest("sha256", first)

    # APPE: the old checksums go; the answer is the new content's
    await upload(port, "f.bin", b"tail", command="APPE")
    current = await download(port, "f.bin")
    assert current == first + b"tail"
    assert hash_value(await c.expect("HASH f.bin", "213")) == digest("sha256", current)
    assert (await c.expect("XCRC f.bin", "250")).text == digest("crc32", current).upper()

    # REST + STOR: overwrites part of the file in place
    def resume() -> None:
        ftp = ftp_login(port)
        try:
            ftp.storbinary("STOR f.bin", io.BytesIO(b"XYZ" * 1000), rest=1000)
        finally:
            ftp.quit()

    await in_thread(resume)
    current = await download(port, "f.bin")
    assert current[1000:4000] == b"XYZ" * 1000
    assert hash_value(await c.expect("HASH f.bin", "213")) == digest("sha256", current)

    # STOR over it: the new file's own checksums
    second = os.urandom(200_000)
    await upload(port, "f.bin", second)
    assert hash_value(await c.expect("HASH f.bin", "213")) == digest("sha256", second)

    # changed behind the server's back
    third = os.urandom(200_001)
    await storage.put_outside("f.bin", third)
    assert hash_value(await c.expect("HASH f.bin", "213")) == digest("sha256", third)
    assert await download(port, "f.bin") == third


async def test_rename_keeps_the_checksums(hashing_server: Server, storage: Storage,
                                          raw_clients: list[RawClient]) -> None:
    data = os.urandom(500_000)
    await upload(hashing_server.server_port, "old.bin", data)
    c = await client(hashing_server, raw_clients)
    await c.expect("MKD sub", "257")
    await c.expect("RNFR old.bin", "350")
    await c.expect("RNTO sub/new.bin", "250")
    with storage.reads() as reads:
        reply = await c.expect("HASH sub/new.bin", "213")
    assert reads[0] == 0
    assert reply.text == f"SHA-256 0-{len(data) - 1} {digest('sha256', data)} sub/new.bin"
    await c.expect("HASH old.bin", "550")


async def test_deleted_then_made_again(hashing_server: Server, storage: Storage,
                                       raw_clients: list[RawClient]) -> None:
    port = hashing_server.server_port
    c = await client(hashing_server, raw_clients)
    await upload(port, "f.bin", b"one")
    await c.expect("DELE f.bin", "250")
    await storage.put_outside("f.bin", b"two")
    assert hash_value(await c.expect("HASH f.bin", "213")) == digest("sha256", b"two")


async def test_ascii_upload_is_hashed_as_stored(hashing_server: Server, storage: Storage,
                                                raw_clients: list[RawClient]) -> None:
    port = hashing_server.server_port

    def send() -> None:
        ftp = ftp_login(port)
        try:
            ftp.storlines("STOR notes.txt", io.BytesIO(b"line one\nline two\n"))
        finally:
            ftp.quit()

    await in_thread(send)
    stored = await download(port, "notes.txt")
    c = await client(hashing_server, raw_clients)
    with storage.reads() as reads:
        assert hash_value(await c.expect("HASH notes.txt", "213")) == digest("sha256", stored)
    assert reads[0] == 0


async def test_throttled_upload_is_hashed(make_server: Callable[..., Any], storage: Storage,
                                          raw_clients: list[RawClient]) -> None:
    """A throttled upload reads block by block (not the pump): hashed all the same."""
    server = await make_server([storage.user()], write_speed_limit_per_connection=64 * MIB)
    data = os.urandom(INLINE_BYTES + 3 * 65536 + 17)
    await upload(server.server_port, "slow.bin", data)
    c = await client(server, raw_clients)
    with storage.reads() as reads:
        assert hash_value(await c.expect("HASH slow.bin", "213")) == digest("sha256", data)
    assert reads[0] == 0


async def test_stou_upload_keeps_its_checksums(hashing_server: Server, storage: Storage,
                                               raw_clients: list[RawClient]) -> None:
    port = hashing_server.server_port

    def stou() -> str:
        ftp = ftp_login(port)
        try:
            ftp.voidcmd("TYPE I")
            with ftp.transfercmd("STOU upload") as conn:
                conn.sendall(b"unique bytes")
            reply = ftp.voidresp()
            assert reply.startswith("226"), reply
            return ftp.nlst()[0]
        finally:
            ftp.quit()

    name = await in_thread(stou)
    c = await client(hashing_server, raw_clients)
    with storage.reads() as reads:
        assert hash_value(await c.expect(f"HASH {name}", "213")) == digest("sha256", b"unique bytes")
    assert reads[0] == 0


async def test_upload_checksums_off(make_server: Callable[..., Any], storage: Storage,
                                    raw_clients: list[RawClient]) -> None:
    records: list[TransferRecord] = []

    class Listener(ServerEvents):
        def transfer(self, session: Any, record: TransferRecord) -> None:
            records.append(record)

    server = await make_server([storage.user()], upload_checksums=False, events=Listener())
    data = os.urandom(50_000)
    await upload(server.server_port, "plain.bin", data)
    assert records[-1].checksums == {} and records[-1].sha256 is None
    c = await client(server, raw_clients)
    with storage.reads() as reads:  # computed, since nothing was kept
        assert hash_value(await c.expect("HASH plain.bin", "213")) == digest("sha256", data)
    assert reads[0] > 0


# ----------------------------------------------------------------------------- ranges


async def test_ranges(hashing_server: Server, storage: Storage, raw_clients: list[RawClient]) -> None:
    data = os.urandom(10_000)
    await upload(hashing_server.server_port, "r.bin", data)
    c = await client(hashing_server, raw_clients)
    assert (await c.expect("RANG 100 199", "350")).text.startswith("Restarting at 100")
    reply = await c.expect("HASH r.bin", "213")
    assert reply.text == f"SHA-256 100-199 {digest('sha256', data[100:200])} r.bin"
    # the selection was used up: the whole file again
    assert (await c.expect("HASH r.bin", "213")).text.startswith("SHA-256 0-9999 ")
    # an end past the file: the range actually hashed is in the reply
    await c.expect("RANG 9000 20000", "350")
    reply = await c.expect("HASH r.bin", "213")
    assert reply.text == f"SHA-256 9000-9999 {digest('sha256', data[9000:])} r.bin"
    # a range covering the whole file is answered from what is stored
    await c.expect("RANG 0 9999", "350")
    with storage.reads() as reads:
        assert hash_value(await c.expect("HASH r.bin", "213")) == digest("sha256", data)
    assert reads[0] == 0
    # reset, and errors
    await c.expect("RANG 5 10", "350")
    await c.expect("RANG 1 0", "350")
    assert (await c.expect("HASH r.bin", "213")).text.startswith("SHA-256 0-9999 ")
    await c.expect("RANG 10 5", "501")
    await c.expect("RANG x y", "501")
    await c.expect("RANG 20000 30000", "350")
    await c.expect("HASH r.bin", "501")  # starts after the end
    await c.expect("RANG 0 9", "350")
    await c.expect("NOOP", "200")  # RANG is for the command right after it
    assert (await c.expect("HASH r.bin", "213")).text.startswith("SHA-256 0-9999 ")
    await c.expect("RANG 0 9", "350")
    await c.expect("RETR r.bin", "504")  # never the whole file where a range was asked
    await c.expect("RANG 0 9", "350")
    await c.expect("STOR r.bin", "504")
    assert await download(hashing_server.server_port, "r.bin") == data


async def test_legacy_positions(hashing_server: Server, storage: Storage,
                                raw_clients: list[RawClient]) -> None:
    data = os.urandom(5000)
    await upload(hashing_server.server_port, "my file.bin", data)
    await upload(hashing_server.server_port, "plain.bin", data)
    c = await client(hashing_server, raw_clients)
    assert (await c.expect("XCRC plain.bin 0 5", "250")).text == digest("crc32", data[:5]).upper()
    assert (await c.expect("XMD5 plain.bin 100 4000", "250")).text == digest("md5", data[100:4000]).upper()
    assert (await c.expect('XCRC "my file.bin" 10 20', "250")).text == digest("crc32", data[10:20]).upper()
    assert (await c.expect("XCRC my file.bin", "250")).text == digest("crc32", data).upper()
    assert (await c.expect("XSHA256 my file.bin 0 5000", "250")).text == digest("sha256", data).upper()
    await c.expect("XCRC plain.bin 10 5", "501")
    await c.expect('XCRC "plain.bin', "501")
    await c.expect("XCRC plain.bin 0 5001", "550")  # past the end
    await c.expect("XCRC plain.bin 6000 7000", "550")


# ----------------------------------------------------------------------------- errors, rights


async def test_errors(hashing_server: Server, storage: Storage, raw_clients: list[RawClient]) -> None:
    c = await client(hashing_server, raw_clients)
    await c.expect("MKD dir", "257")
    await c.expect("HASH missing.bin", "550")
    await c.expect("XCRC missing.bin", "550")
    assert (await c.expect("HASH dir", "553")).text == "the hash of a directory is not defined"
    await c.expect("XMD5 dir", "550")
    await c.expect("HASH", "501")
    await c.expect("XCRC", "501")
    await c.expect("OPTS HASH SHA-3", "501")
    anonymous = await RawClient.connect(hashing_server.server_port)
    raw_clients.append(anonymous)
    await anonymous.expect("HASH dir", "503")  # not logged in


async def test_read_permission_is_needed(make_server: Callable[..., Any], root: Path,
                                         raw_clients: list[RawClient]) -> None:
    (root / "secret").mkdir()
    (root / "secret" / "s.bin").write_bytes(b"secret")
    (root / "pub.bin").write_bytes(b"public")
    (root / "hidden.bin").write_bytes(b"hidden")
    user = User(base_path=root, permissions=[
        Permission("/", readable=True, writable=True),
        Permission("/secret", readable=False, writable=True),
        Permission("/hidden.bin", readable=False, writable=False),
    ])
    server = await make_server([user])
    c = await client(server, raw_clients)
    await c.expect("HASH pub.bin", "213")
    assert (await c.expect("HASH secret/s.bin", "550")).text == "permission denied"
    await c.expect("XCRC secret/s.bin", "550")
    await c.expect("XCRC secret/s.bin 0 3", "550")  # the path found inside the argument
    await c.expect('XMD5 "secret/s.bin" 0 3', "550")
    # the rule names the file: "hidden.bin 0 3" as a whole is no path it covers,
    # the path inside the argument is
    await c.expect("XCRC hidden.bin 0 3", "550")
    await c.expect("HASH hidden.bin", "550")


async def test_confined_to_the_root(make_server: Callable[..., Any], tmp_path: Path,
                                    root: Path, raw_clients: list[RawClient]) -> None:
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"not yours")
    (root / "link.bin").symlink_to(outside)
    server = await make_server()
    c = await client(server, raw_clients)
    await c.expect("HASH link.bin", "550")
    await c.expect("XCRC link.bin", "550")
    await c.expect("HASH ../outside.bin", "550")


async def test_size_policy_only_limits_reading(make_server: Callable[..., Any], storage: Storage,
                                               raw_clients: list[RawClient]) -> None:
    server = await make_server([storage.user()], hash_max_size=1000)
    await upload(server.server_port, "big.bin", os.urandom(5000))
    await storage.put_outside("outside.bin", os.urandom(5000))
    await storage.put_outside("small.bin", b"12345")
    c = await client(server, raw_clients)
    await c.expect("HASH big.bin", "213")  # stored: answered whatever the size
    await c.expect("OPTS HASH MD5", "200")
    await c.expect("HASH big.bin", "556")  # not stored: would have to be read
    await c.expect("XSHA256 outside.bin", "556")
    await c.expect("XSHA256 outside.bin 0 1000", "250")  # a range within the limit
    await c.expect("HASH small.bin", "213")


async def test_busy_while_the_file_is_uploaded(hashing_server: Server, storage: Storage,
                                               raw_clients: list[RawClient]) -> None:
    uploader = await client(hashing_server, raw_clients)
    reader, writer = await uploader.open_data()
    await uploader.expect("STOR busy.bin", "150")
    writer.write(b"x" * 1000)
    await writer.drain()
    asker = await client(hashing_server, raw_clients)
    assert "upload" in (await asker.expect("HASH busy.bin", "450")).text
    writer.close()
    await writer.wait_closed()
    assert (await uploader.reply()).code == "226"
    assert hash_value(await asker.expect("HASH busy.bin", "213")) == digest("sha256", b"x" * 1000)


# ----------------------------------------------------------------------------- ABOR, the end


class SlowReads(PathIO):
    """Local disk whose reads take a while: a hash long enough to interrupt."""

    reads = 0
    started: asyncio.Event | None = None

    async def read(self, file: Any, block_size: int) -> bytes:
        type(self).reads += 1
        if type(self).started is not None:
            type(self).started.set()  # type: ignore[union-attr]
        await asyncio.sleep(0.05)
        return await super().read(file, block_size)


async def test_abor_stops_a_long_hash(make_server: Callable[..., Any], root: Path,
                                      raw_clients: list[RawClient]) -> None:
    (root / "big.bin").write_bytes(os.urandom(40 * MIB))  # 40 reads of 1 MiB: 2 s
    SlowReads.reads, SlowReads.started = 0, asyncio.Event()
    server = await make_server(path_io_factory=SlowReads)
    c = await client(server, raw_clients)
    await c.send("HASH big.bin")
    async with asyncio.timeout(STEP):
        await SlowReads.started.wait()
    assert (await c.expect("NOOP", "200")).text == "ok"  # the session answers meanwhile
    await c.expect("HASH big.bin", "450")  # one at a time
    aborted = await c.cmd("ABOR")
    assert aborted.code == "426", aborted
    assert (await c.reply()).code == "226"
    reads = SlowReads.reads
    await asyncio.sleep(0.2)
    assert SlowReads.reads == reads < 40, "the hash went on after ABOR"
    await c.expect("XCRC big.bin 0 10", "250")  # the session goes on


async def test_the_end_of_the_session_stops_a_long_hash(make_server: Callable[..., Any],
                                                        root: Path) -> None:
    (root / "big.bin").write_bytes(os.urandom(40 * MIB))
    SlowReads.reads, SlowReads.started = 0, asyncio.Event()
    server = await make_server(path_io_factory=SlowReads)
    c = await RawClient.connect(server.server_port)
    await c.login()
    await c.send("HASH big.bin")
    async with asyncio.timeout(STEP):
        await SlowReads.started.wait()
    sessions = list(server.sessions)
    await c.close()
    async with asyncio.timeout(STEP):
        await asyncio.wait(sessions)
    reads = SlowReads.reads
    await asyncio.sleep(0.2)
    assert SlowReads.reads == reads < 40


# ----------------------------------------------------------------------------- the record, logs


async def test_the_transfer_record_carries_the_checksums(
    make_server: Callable[..., Any], storage: Storage
) -> None:
    records: list[TransferRecord] = []

    class Listener(ServerEvents):
        def transfer(self, session: Any, record: TransferRecord) -> None:
            records.append(record)

    server = await make_server([storage.user()], events=Listener(),
                               upload_checksums=["sha256", "crc32"])
    data = os.urandom(2 * MIB + 3)
    await upload(server.server_port, "logged.bin", data)
    record = records[-1]
    assert record.status == "complete"
    assert record.checksums == {"sha256": digest("sha256", data), "crc32": digest("crc32", data)}
    assert record.sha256 == digest("sha256", data)
    line = format_xferlog_line(record)
    assert line.split()[-2:] == ["c", f"sha256:{digest('sha256', data)}"]
    await upload(server.server_port, "logged.bin", b"more", command="APPE")
    assert records[-1].command == "APPE" and records[-1].checksums == {}
    assert format_xferlog_line(records[-1]).split()[-1] == "c"


async def test_an_aborted_upload_keeps_nothing(hashing_server: Server, storage: Storage,
                                               raw_clients: list[RawClient]) -> None:
    c = await client(hashing_server, raw_clients)
    reader, writer = await c.open_data()
    await c.expect("STOR gone.bin", "150")
    writer.write(os.urandom(3 * MIB))
    await writer.drain()
    aborted = await c.cmd("ABOR")
    assert aborted.code == "426", aborted
    assert (await c.reply()).code == "226"
    writer.close()
    await c.expect("HASH gone.bin", "550")


# ----------------------------------------------------------------------------- local disk


def local_record(path: Path) -> bytes:
    return os.getxattr(path, localsums.ATTRIBUTE)


async def test_local_attribute_and_mfmt(make_server: Callable[..., Any], root: Path,
                                        raw_clients: list[RawClient]) -> None:
    server = await make_server()
    data = os.urandom(70_000)
    await upload(server.server_port, "a.bin", data)
    record = local_record(root / "a.bin")
    assert f"sha256={digest('sha256', data)}".encode() in record
    assert f"size={len(data)}".encode() in record
    c = await client(server, raw_clients)
    await c.expect("MFMT 20200102030405 a.bin", "213")  # the bytes did not change
    with LocalStorage(root).reads() as reads:
        assert hash_value(await c.expect("HASH a.bin", "213")) == digest("sha256", data)
    assert reads[0] == 0
    # an in-place write drops the attribute before its first byte
    await upload(server.server_port, "a.bin", b"more", command="APPE")
    with pytest.raises(OSError):
        local_record(root / "a.bin")


async def test_local_without_extended_attributes(make_server: Callable[..., Any], root: Path,
                                                 raw_clients: list[RawClient],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A filesystem without user xattrs: the process remembers, just as correctly."""
    monkeypatch.setattr(localsums, "_HAS_XATTR", False)
    server = await make_server()
    data = os.urandom(80_000)
    await upload(server.server_port, "n.bin", data)
    c = await client(server, raw_clients)
    with LocalStorage(root).reads() as reads:
        assert hash_value(await c.expect("HASH n.bin", "213")) == digest("sha256", data)
    assert reads[0] == 0
    changed = os.urandom(80_001)
    (root / "n.bin").write_bytes(changed)
    assert hash_value(await c.expect("HASH n.bin", "213")) == digest("sha256", changed)


async def test_a_subclass_that_changes_bytes_keeps_no_checksums(
    make_server: Callable[..., Any], root: Path, raw_clients: list[RawClient]
) -> None:
    """A path I/O that transforms what it writes: no checksum of the sent bytes is kept,
    HASH reads what a download would get."""

    class Upper(PathIO):
        async def write(self, file: Any, data: bytes) -> None:
            await super().write(file, bytes(data).upper())

    server = await make_server(path_io_factory=Upper)
    await upload(server.server_port, "u.txt", b"hello")
    assert (root / "u.txt").read_bytes() == b"HELLO"
    with pytest.raises(OSError):
        local_record(root / "u.txt")
    c = await client(server, raw_clients)
    assert hash_value(await c.expect("HASH u.txt", "213")) == digest("sha256", b"HELLO")



def test_log_lines_carry_the_checksum() -> None:
    import json
    import logging

    from gateway.observe.logs import JsonFormatter, TransferLogger

    class Session:
        id = 7

    record = TransferRecord(command="STOR", direction="i", path="/a.bin", login="alice",
                            client_host="127.0.0.1", size=3,
                            checksums={"sha256": digest("sha256", b"abc")})
    record.finish("complete")
    captured: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, entry: logging.LogRecord) -> None:
            captured.append(entry)

    logger = logging.getLogger("tests.hashes.transfer")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = Capture()
    logger.addHandler(handler)
    try:
        TransferLogger(logger).transfer(Session(), record)
    finally:
        logger.removeHandler(handler)
    (entry,) = captured
    assert entry.getMessage().endswith(f"complete sha256 {digest('sha256', b'abc')}")
    line = json.loads(JsonFormatter().format(entry))
    assert line["transfer"]["sha256"] == digest("sha256", b"abc")
    assert line["session"] == 7
