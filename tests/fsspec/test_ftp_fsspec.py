"""FTP through ``gateway.Server`` with users rooted in fsspec filesystems.

The server runs in the test's loop; ftplib (blocking) runs in worker threads.  What
the FTP client cannot see is checked behind the gateway's back: the local
directory, fsspec's memory store, the bucket through a plain aiobotocore client.
"""

from __future__ import annotations

import asyncio
import ftplib
import io
import os
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFile, MemoryFileSystem

from gateway import Server, User
from tests.s3.conftest import all_keys, open_uploads, raw_client
from tests.s3.seaweed import S3Endpoint

from .conftest import drop_memory_root, memory_root

HOST = "127.0.0.1"
STEP = 30.0
MIB = 1024 * 1024


def login(server: Server, user: str, password: str) -> ftplib.FTP:
    ftp = ftplib.FTP(timeout=STEP)
    ftp.connect(HOST, server.server_port)
    ftp.login(user, password)
    return ftp


async def in_thread(func: Callable[..., Any], *args: Any) -> Any:
    async with asyncio.timeout(60):
        return await asyncio.to_thread(func, *args)


def retr(ftp: ftplib.FTP, name: str) -> bytes:
    chunks: list[bytes] = []
    ftp.retrbinary("RETR " + name, chunks.append)
    return b"".join(chunks)


def error_code(func: Callable[..., Any], *args: Any) -> str:
    try:
        func(*args)
    except ftplib.all_errors as exc:
        return str(exc)[:3]
    raise AssertionError("the command succeeded")


async def eventually(check: Callable[[], Any], what: str, deadline: float = 10.0) -> None:
    """Poll ``check`` until it is true: cleanups run right after the reply, not before."""
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"not true after {deadline}s: {what}")
        await asyncio.sleep(0.02)


def session(server: Server, user: str, password: str) -> dict[str, Any]:
    """Everything one user does: upload, list, rename, mkdir, delete, download."""
    ftp = login(server, user, password)
    try:
        ftp.voidcmd("TYPE I")
        seen: dict[str, Any] = {}
        ftp.storbinary(f"STOR {user}.txt", io.BytesIO(f"{user}'s data".encode()))
        ftp.storbinary("STOR scratch.bin", io.BytesIO(os.urandom(3 * MIB + 7)))
        ftp.mkd("docs")
        ftp.rename(f"{user}.txt", f"docs/{user}-renamed.txt")
        seen["root"] = sorted(ftp.nlst())
        seen["docs"] = sorted(name.rsplit("/", 1)[-1] for name in ftp.nlst("docs"))
        seen["facts"] = sorted(
            (name, facts["type"]) for name, facts in ftp.mlsd() if facts["type"] in ("file", "dir")
        )
        seen["content"] = retr(ftp, f"docs/{user}-renamed.txt")
        ftp.delete("scratch.bin")
        ftp.mkd("empty")
        seen["after"] = sorted(ftp.nlst())
        seen["escape"] = sorted(ftp.nlst("../.."))
        return seen
    finally:
        ftp.quit()


async def test_memory_local_and_s3fs_users_do_not_see_each_other(
    s3_service: S3Endpoint, s3_options: dict[str, Any], s3_prefix: str, tmp_path: Path
):
    alice_root = memory_root()
    fsspec.filesystem("memory").mkdir("/" + alice_root.split("://", 1)[1])
    (tmp_path / "bob").mkdir()
    users = [
        User("alice", "a", base_path=alice_root),
        User("bob", "b", base_path=f"fsspec+file://{tmp_path / 'bob'}"),
        User("carol", "c", base_path=f"fsspec+s3://{s3_service.bucket}/{s3_prefix}/carol"),
    ]
    server = Server(users, storage_options=s3_options)
    await server.start(HOST, 0)
    try:
        results = await asyncio.gather(
            *(in_thread(session, server, name, pw) for name, pw in (("alice", "a"), ("bob", "b"), ("carol", "c")))
        )
        factories = [factory for factory, _ in server._root_backends.values()]
        assert len(factories) == 3
    finally:
        await server.close()
    for user, seen in zip(("alice", "bob", "carol"), results, strict=True):
        assert seen["root"] == ["docs", "scratch.bin"], user
        assert seen["docs"] == [f"{user}-renamed.txt"], user
        assert seen["facts"] == [("docs", "dir"), ("scratch.bin", "file")], user
        assert seen["content"] == f"{user}'s data".encode(), user
        assert seen["after"] == ["docs", "empty"], user
        assert seen["escape"] == seen["after"], user  # ".." stops at the root
    # behind the gateway's back: each store holds its own user's files only
    assert sorted(os.listdir(tmp_path / "bob")) == ["docs", "empty"]
    assert (tmp_path / "bob" / "docs" / "bob-renamed.txt").read_bytes() == b"bob's data"
    memory = fsspec.filesystem("memory")
    alice_dir = "/" + alice_root.split("://", 1)[1]
    assert memory.cat_file(f"{alice_dir}/docs/alice-renamed.txt") == b"alice's data"
    assert sorted(p.rsplit("/", 1)[-1] for p in memory.ls(alice_dir, detail=False)) == ["docs", "empty"]
    drop_memory_root(alice_root)
    async with raw_client(s3_service) as client:
        keys = await all_keys(client, s3_service.bucket, f"{s3_prefix}/carol/")
    relative = sorted(key[len(f"{s3_prefix}/carol/"):] for key in keys)
    # MKD persisted "empty" as a marker; the renamed file left no trace at its old name
    assert relative == ["docs/", "docs/carol-renamed.txt", "empty/"]
    # closing the server closed every filesystem it opened
    assert all(factory.state._fs is None for factory in factories)


async def test_upload_reset_mid_transfer_leaves_no_partial_file_on_local_root(tmp_path: Path):
    root = tmp_path / "dave"
    root.mkdir()
    (root / "keep.bin").write_bytes(b"old content")
    server = Server([User("dave", "d", base_path=f"fsspec+file://{root}")])
    await server.start(HOST, 0)

    def scenario() -> tuple[str, str, bytes]:
        ftp = login(server, "dave", "d")
        try:
            ftp.voidcmd("TYPE I")
            codes = []
            for name in ("new.bin", "keep.bin"):
                conn = ftp.transfercmd(f"STOR {name}")
                block = os.urandom(MIB)
                for _ in range(12):
                    conn.sendall(block)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()  # RST: the client vanished mid-transfer
                codes.append(error_code(ftp.voidresp))
            ftp.voidcmd("NOOP")  # the session goes on
            return codes[0], codes[1], retr(ftp, "keep.bin")
        finally:
            ftp.quit()

    try:
        new_code, keep_code, kept = await in_thread(scenario)
    finally:
        await server.close()
    assert new_code[0] in "45" and keep_code[0] in "45", (new_code, keep_code)
    assert kept == b"old content"
    await eventually(lambda: sorted(os.listdir(root)) == ["keep.bin"],
                     f"only keep.bin left, found {sorted(os.listdir(root))}")


async def test_abor_mid_upload_on_s3fs_leaves_no_object(
    s3_service: S3Endpoint, s3_options: dict[str, Any], s3_prefix: str
):
    options = dict(s3_options, fsspec_part_size=5 * MIB, fsspec_parts_in_flight=2)
    server = Server([User("erin", "e", base_path=f"fsspec+s3://{s3_service.bucket}/{s3_prefix}/erin")],
                    storage_options=options)
    await server.start(HOST, 0)

    def scenario() -> str:
        ftp = login(server, "erin", "e")
        try:
            ftp.voidcmd("TYPE I")
            conn = ftp.transfercmd("STOR aborted.bin")
            block = os.urandom(MIB)
            for _ in range(16):  # several parts uploaded before the abort
                conn.sendall(block)
            first = ftp.abort()
            if first.startswith("426"):
                ftp.getresp()
            conn.close()
            ftp.voidcmd("NOOP")
            return first
        finally:
            ftp.quit()

    try:
        first = await in_thread(scenario)
    finally:
        await server.close()
    assert first[:3] in ("426", "226", "225"), first
    async with raw_client(s3_service) as client:
        assert await open_uploads(client, s3_service.bucket, f"{s3_prefix}/") == []
        assert await all_keys(client, s3_service.bucket, f"{s3_prefix}/") == []


# -- a slow synchronous filesystem must not stall other sessions ------------------------------


class GatedMemoryFileSystem(MemoryFileSystem):
    """fsspec's memory filesystem whose file writes wait for a gate: a stuck disk.

    Its own store, so it shares nothing with the ``memory`` protocol.
    """

    protocol = ("gwgated",)
    store: dict[str, Any] = {}
    pseudo_dirs = [""]
    gate = threading.Event()
    entered = threading.Event()

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        file = super()._open(path, mode, **kwargs)
        if "w" in mode:
            gate, entered = self.gate, self.entered

            class Gated(MemoryFile):
                def write(self, data: Any) -> int:
                    entered.set()
                    if not gate.wait(STEP):
                        raise TimeoutError("the test never opened the gate")
                    return super().write(data)

            file.__class__ = Gated
        return file


fsspec.register_implementation("gwgated", GatedMemoryFileSystem, clobber=True)


async def test_stuck_sync_filesystem_does_not_stall_other_sessions():
    GatedMemoryFileSystem.gate.clear()
    GatedMemoryFileSystem.entered.clear()
    name = uuid.uuid4().hex[:8]
    fs = GatedMemoryFileSystem()
    fs.mkdir(f"/{name}/slow")
    fs.mkdir(f"/{name}/quick")
    fs.pipe_file(f"/{name}/quick/existing.txt", b"already here")
    server = Server([
        User("slow", "s", base_path=f"fsspec+gwgated:///{name}/slow"),
        User("quick", "q", base_path=f"fsspec+gwgated:///{name}/quick"),
    ])
    await server.start(HOST, 0)

    def stuck_upload() -> str:
        ftp = login(server, "slow", "s")
        try:
            ftp.storbinary("STOR big.bin", io.BytesIO(os.urandom(8 * MIB)))
            return ftp.lastresp
        finally:
            ftp.quit()

    def meanwhile() -> tuple[list[float], list[str]]:
        ftp = login(server, "quick", "q")
        try:
            answered = []
            for _ in range(5):
                start = time.monotonic()
                ftp.voidcmd("NOOP")
                answered.append(time.monotonic() - start)
            listed = ftp.nlst()  # the same filesystem, through the other threads
            return answered, listed
        finally:
            ftp.quit()

    try:
        upload = asyncio.ensure_future(in_thread(stuck_upload))
        entered = await asyncio.to_thread(GatedMemoryFileSystem.entered.wait, STEP)
        assert entered, "the upload never reached the filesystem"
        answered, listed = await in_thread(meanwhile)
        assert not upload.done()  # still stuck while the other session was served
        GatedMemoryFileSystem.gate.set()
        assert (await upload) == "226"
    finally:
        GatedMemoryFileSystem.gate.set()
        await server.close()
    assert max(answered) < 1.0, answered
    assert listed == ["existing.txt"]
    assert fs.size(f"/{name}/slow/big.bin") == 8 * MIB
    fs.rm(f"/{name}", recursive=True)


def test_gated_filesystem_is_synchronous():
    # the stall test above means something only if this filesystem blocks a thread
    from backends.fsspec.options import is_async

    assert not is_async(GatedMemoryFileSystem)


@pytest.mark.parametrize("user_root", ["gcs://bucket/carol", "fsspec+abfs://container/carol"])
async def test_missing_package_refused_at_login_and_session_goes_on(user_root: str, caplog):
    server = Server([User("carol", "c", base_path=user_root)])
    await server.start(HOST, 0)

    def scenario() -> tuple[str, str]:
        ftp = ftplib.FTP(timeout=STEP)
        ftp.connect(HOST, server.server_port)
        try:
            code = error_code(ftp.login, "carol", "c")
            return code, ftp.voidcmd("NOOP")
        finally:
            ftp.close()

    try:
        code, noop = await in_thread(scenario)
    finally:
        await server.close()
    assert code == "530", code
    assert noop.startswith("200")
    extra = "gcs" if user_root.startswith("gcs") else "azure"
    assert f"gateway[{extra}]" in caplog.text
    assert "Traceback" not in caplog.text  # one plain line for the operator
