"""Command actions (the event on stdin, GATEWAY_EVENT_* set) and the pre-upload hook
(a command or an HTTP endpoint that may refuse an upload before any byte is stored)."""

from __future__ import annotations

import ftplib
import io
import json
import sys
import time
from pathlib import Path

import pytest

from gateway.events.actions import CommandAction
from tests.events.conftest import eventually, in_thread, login, outbox_rows, upload, write_config

WRITE_STDIN = """
import os, sys
target = os.path.join(sys.argv[1], os.environ["GATEWAY_EVENT_ID"] + ".json")
data = sys.stdin.buffer.read()
with open(target + ".env", "w") as env:
    env.write(os.environ.get("GATEWAY_EVENT_PATH", "") + "\\n" + os.environ.get("GATEWAY_EVENT_SHA256", ""))
with open(target, "wb") as out:
    out.write(data)
"""

HOOK = """
import json, sys
event = json.load(sys.stdin)
if "bad" in event["path"]:
    print("553 no bad names here")
    sys.exit(1)
if event["path"].endswith(".exe"):
    print("programs are not welcome")
    sys.exit(2)
"""


def script(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def toml_list(items: list[str]) -> str:
    return json.dumps(items)


async def test_a_command_gets_the_event_on_stdin(tmp_path: Path, service) -> None:
    outdir = tmp_path / "received"
    outdir.mkdir()
    db = f"sqlite+aiosqlite:///{tmp_path / 'outbox.sqlite3'}"
    argv = [sys.executable, script(tmp_path, "write.py", WRITE_STDIN), str(outdir)]
    config = write_config(tmp_path, f"""
[events]
database_url = "{db}"
poll_interval = "100ms"

[[events.actions]]
name = "ingest"
kind = "command"
command = {toml_list(argv)}
events = ["upload", "rename"]
accounts = ["alice"]
""")
    _, port = await service(config)
    assert (await in_thread(upload, port, "/a.jpg", b"first")).startswith("226")
    assert (await in_thread(upload, port, "/b.jpg", b"bob's", "bob")).startswith("226")  # not alice
    ftp = await in_thread(login, port)
    await in_thread(ftp.rename, "/a.jpg", "/c.jpg")
    await in_thread(ftp.quit)

    async def delivered() -> bool:
        rows = await outbox_rows(db)
        return len(rows) == 2 and all(r["status"] == "delivered" for r in rows)

    await eventually(delivered, what="both events delivered to the command")
    files = sorted(outdir.glob("*.json"))
    events = sorted((json.loads(f.read_bytes()) for f in files), key=lambda e: e["kind"])
    assert [e["kind"] for e in events] == ["rename", "upload"]
    rename, upload_event = events
    assert rename["path"] == "/a.jpg" and rename["target"] == "/c.jpg"
    assert rename["target_storage"]["path"].endswith("/alice/c.jpg")
    env = (outdir / f"{upload_event['id']}.json.env").read_text().split("\n")
    assert env == ["/a.jpg", upload_event["checksums"]["sha256"]]


async def test_a_failing_command_is_retried_then_given_up(tmp_path: Path, service) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'outbox.sqlite3'}"
    argv = [sys.executable, "-c", "import sys; sys.stderr.write('queue full\\n'); sys.exit(3)"]
    config = write_config(tmp_path, f"""
[events]
database_url = "{db}"
poll_interval = "50ms"
retry_base = "50ms"
max_attempts = 3

[[events.actions]]
kind = "command"
command = {toml_list(argv)}
""")
    _, port = await service(config)
    await in_thread(upload, port, "/a.jpg", b"x")

    async def failed() -> bool:
        rows = await outbox_rows(db)
        return len(rows) == 1 and rows[0]["status"] == "failed"

    await eventually(failed, what="the delivery given up")
    [row] = await outbox_rows(db)
    assert row["attempts"] == 3 and "exit 3 queue full" in row["last_error"]


async def test_the_pre_upload_command_refuses_before_storage(tmp_path: Path, service) -> None:
    argv = [sys.executable, script(tmp_path, "hook.py", HOOK)]
    config = write_config(tmp_path, f"""
[events.pre_upload]
command = {toml_list(argv)}
""")
    _, port = await service(config)
    with pytest.raises(ftplib.error_perm, match="^553 no bad names here"):
        await in_thread(upload, port, "/bad.jpg", b"data")
    with pytest.raises(ftplib.error_perm, match="^550 programs are not welcome"):
        await in_thread(upload, port, "/setup.exe", b"MZ")
    assert (await in_thread(upload, port, "/good.jpg", b"data")).startswith("226")
    stored = sorted(p.name for p in (tmp_path / "files" / "alice").iterdir())
    assert stored == ["good.jpg"]  # nothing of the refused ones, not even a temporary


async def test_the_pre_upload_endpoint_refuses_and_fails_closed(tmp_path: Path, service, receivers) -> None:
    receiver = receivers("hook-key", plan=["refuse"], refuse_text="quota for today used up").start()
    config = write_config(tmp_path, f"""
[events.pre_upload]
url = "{receiver.url}"
secret = "hook-key"
timeout = "2s"
""")
    running, port = await service(config)
    with pytest.raises(ftplib.error_perm, match="^550 quota for today used up"):
        await in_thread(upload, port, "/a.jpg", b"data")
    assert (await in_thread(upload, port, "/b.jpg", b"data")).startswith("226")
    first = json.loads(receiver.requests[0].body)
    assert receiver.requests[0].verified and first["kind"] == "upload_starting" and first["path"] == "/a.jpg"
    receiver.stop()  # the hook cannot be asked: refused, 451, nothing stored
    ftp = await in_thread(login, port)
    with pytest.raises(ftplib.error_temp, match="^451 .*pre-upload check is unavailable"):
        await in_thread(ftp.storbinary, "STOR c.jpg", io.BytesIO(b"data"))
    await in_thread(ftp.quit)
    assert sorted(p.name for p in (tmp_path / "files" / "alice").iterdir()) == ["b.jpg"]


async def test_a_command_past_its_timeout_is_killed(tmp_path: Path) -> None:
    marker = tmp_path / "survived"
    slow = f"import time, pathlib; time.sleep(30); pathlib.Path({str(marker)!r}).write_text('x')"
    action = CommandAction("slow", (sys.executable, "-c", slow), timeout=0.5)
    started = time.monotonic()
    outcome = await action.deliver("e-1", b"{}")
    assert not outcome.ok and "killed after 0.5 s" in outcome.detail
    assert time.monotonic() - started < 20
    missing = await CommandAction("none", ("/nonexistent/program",)).deliver("e-2", b"{}")
    assert not missing.ok and "cannot run /nonexistent/program" in missing.detail
    assert not marker.exists()


async def test_a_hook_that_cannot_run_lets_uploads_through_when_fail_open(tmp_path: Path, service) -> None:
    config = write_config(tmp_path, """
[events.pre_upload]
command = ["/nonexistent/hook"]
fail_open = true
""")
    _, port = await service(config)
    assert (await in_thread(upload, port, "/a.jpg", b"data")).startswith("226")
