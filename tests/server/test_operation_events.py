"""Durable listeners: ``ServerEvents.completed`` sees every operation before the client
hears of it, and ``ServerEvents.upload_starting`` may refuse an upload before storage
is touched."""

from __future__ import annotations

import asyncio
import hashlib
import io
from pathlib import Path
from typing import Any

import pytest

from gateway import User
from gateway.server.events import Operation, ServerEvents, UploadRefused

from .conftest import expect_error, ftp_connect, ftp_login, in_thread, retr_bytes


class Recorder(ServerEvents):
    def __init__(self) -> None:
        self.operations: list[Operation] = []

    async def completed(self, session: Any, operation: Operation) -> None:
        self.operations.append(operation)

    def kinds(self) -> list[str]:
        return [operation.kind for operation in self.operations]


async def test_every_operation_is_seen_with_its_paths(make_server, root: Path) -> None:
    recorder = Recorder()
    users = (User("alice", "secret", base_path=root),)
    server = await make_server(users, events=recorder, upload_checksums=("sha256",))
    payload = b"x" * 70_000

    def scenario() -> bytes:
        expect_error("530", ftp_login, server.server_port, "alice", "wrong")
        ftp = ftp_login(server.server_port, "alice", "secret")
        ftp.mkd("inbox")
        ftp.storbinary("STOR inbox/a.bin", io.BytesIO(payload))
        data = retr_bytes(ftp, "inbox/a.bin")
        ftp.rename("inbox/a.bin", "inbox/b.bin")
        ftp.delete("inbox/b.bin")
        ftp.rmd("inbox")
        ftp.quit()
        return data

    assert await in_thread(scenario) == payload
    assert recorder.kinds() == [
        "login_failed", "login", "mkdir", "upload", "download", "rename", "delete", "rmdir",
    ]
    failed, login, mkdir, upload, download, rename, delete, rmdir = recorder.operations
    assert failed.login == "alice" and login.login == "alice"
    assert failed.session_id != login.session_id  # two control connections
    assert mkdir.path == "/inbox" and mkdir.real == str(root / "inbox")
    assert upload.path == "/inbox/a.bin" and upload.size == len(payload)
    assert upload.record is not None and upload.record.status == "complete"
    assert upload.record.sha256 == hashlib.sha256(payload).hexdigest()
    assert download.path == "/inbox/a.bin" and download.size == len(payload)
    assert (rename.path, rename.target) == ("/inbox/a.bin", "/inbox/b.bin")
    assert rename.target_real == str(root / "inbox" / "b.bin")
    assert delete.path == "/inbox/b.bin" and rmdir.path == "/inbox"
    assert {operation.client_host for operation in recorder.operations} == {"127.0.0.1"}
    assert upload.storage_root == str(root)


class Holding(ServerEvents):
    """Holds the first upload's ``completed`` until released."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def completed(self, session: Any, operation: Operation) -> None:
        if operation.kind == "upload":
            self.entered.set()
            await self.release.wait()


async def test_the_reply_waits_for_the_listener(make_server, root: Path) -> None:
    holding = Holding()
    server = await make_server(events=holding)

    def upload() -> str:
        ftp = ftp_login(server.server_port)
        reply = ftp.storbinary("STOR held.bin", io.BytesIO(b"held"))
        ftp.quit()
        return reply

    client = asyncio.ensure_future(in_thread(upload))
    async with asyncio.timeout(30):
        await holding.entered.wait()
    # the file is committed, but the client has not heard 226 while the listener runs
    assert (root / "held.bin").read_bytes() == b"held"
    done, _ = await asyncio.wait({client}, timeout=0.5)
    assert not done
    holding.release.set()
    assert (await client).startswith("226")


class Failing(ServerEvents):
    async def completed(self, session: Any, operation: Operation) -> None:
        raise RuntimeError("outbox unavailable")


async def test_a_failing_listener_leaves_the_reply_alone(make_server, root: Path) -> None:
    server = await make_server(events=Failing())

    def scenario() -> tuple[str, str]:
        ftp = ftp_login(server.server_port)
        stored = ftp.storbinary("STOR kept.bin", io.BytesIO(b"kept"))
        deleted = ftp.delete("kept.bin")
        ftp.quit()
        return stored, deleted

    stored, deleted = await in_thread(scenario)
    assert stored.startswith("226") and deleted.startswith("250")


class Gatekeeper(ServerEvents):
    def __init__(self) -> None:
        self.asked: list[Operation] = []

    async def upload_starting(self, session: Any, operation: Operation) -> None:
        self.asked.append(operation)
        name = Path(operation.path or "").name
        if name.endswith(".exe"):
            raise UploadRefused("553", "executables are not accepted here")
        if name == "broken.bin":
            raise ConnectionRefusedError("hook endpoint down")


@pytest.mark.parametrize(("name", "code", "text"), [
    ("tool.exe", "553", "executables are not accepted here"),
    ("broken.bin", "451", "pre-upload check failed"),
])
async def test_an_upload_refused_before_it_starts(make_server, root: Path, name: str, code: str,
                                                  text: str) -> None:
    keeper = Gatekeeper()
    server = await make_server(events=keeper)

    def scenario() -> tuple[str, str]:
        ftp = ftp_login(server.server_port)
        ftp.sendcmd("ALLO 1234")
        refused = expect_error(code, ftp.storbinary, f"STOR {name}", io.BytesIO(b"payload"))
        # the file lock was given back: the next upload of the name is not "busy"
        allowed = ftp.storbinary("STOR fine.bin", io.BytesIO(b"ok"))
        ftp.quit()
        return refused, allowed

    refused, allowed = await in_thread(scenario)
    assert text in refused and allowed.startswith("226")
    assert not (root / name).exists()
    assert (root / "fine.bin").read_bytes() == b"ok"
    assert keeper.asked[0].size == 1234 and keeper.asked[0].path == f"/{name}"
    assert keeper.asked[1].size is None


async def test_a_refusal_keeps_the_session_usable_for_a_retry(make_server, root: Path) -> None:
    server = await make_server(events=Gatekeeper())

    def scenario() -> list[str]:
        ftp = ftp_connect(server.server_port)
        ftp.login()
        expect_error("553", ftp.storbinary, "STOR a.exe", io.BytesIO(b"1"))
        expect_error("553", ftp.storbinary, "STOR a.exe", io.BytesIO(b"2"))
        names = ftp.nlst()
        ftp.quit()
        return names

    assert await in_thread(scenario) == []
