"""An upload's temporary file is never seen nor touched by clients: not listed, not
readable, not removable, not renamable, while the upload runs; and after a kill -9 of
the server mid-upload, the next start cleans it up (or rolls the file back) before
clients can see it."""

from __future__ import annotations

import asyncio
import ftplib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.server.conftest import HOST, STEP, RawClient
from tests.service.conftest import GatewayProcess, base_env


async def _listing(client: RawClient, command: str) -> str:
    port = await client.pasv()
    async with asyncio.timeout(STEP):
        reader, writer = await asyncio.open_connection(HOST, port)
    await client.expect(command, "150")
    async with asyncio.timeout(STEP):
        text = (await reader.read()).decode()
    writer.close()
    assert (await client.reply()).code == "226"
    return text


async def test_upload_temporaries_are_invisible_and_untouchable(make_server, root: Path) -> None:
    server = await make_server()
    uploader = await RawClient.connect(server.server_port)
    other = await RawClient.connect(server.server_port)
    await uploader.login()
    await other.login()
    port = await uploader.pasv()
    async with asyncio.timeout(STEP):
        _reader, writer = await asyncio.open_connection(HOST, port)
    await uploader.expect("STOR report.pdf", "150")
    writer.write(b"x" * 100_000)
    await writer.drain()
    # the temporary exists on disk while the upload runs (made before the 150)...
    [temporary] = [n for n in os.listdir(root) if "partial" in n]
    # ...and no command can see or address it
    for command in ("LIST -a", "NLST -a", "MLSD"):
        assert temporary not in await _listing(other, command)
    await other.expect(f"SIZE {temporary}", "550")
    await other.expect(f"MDTM {temporary}", "550")
    await other.expect(f"DELE {temporary}", "550")
    await other.expect(f"RNFR {temporary}", "550")
    await other.expect(f"MLST {temporary}", "550")
    await other.pasv()
    await other.expect(f"RETR {temporary}", "550")
    writer.close()
    assert (await uploader.reply()).code == "226"
    assert sorted(os.listdir(root)) == ["report.pdf"]
    await uploader.close()
    await other.close()


# -- after a kill -9: a real ``gateway serve`` process, killed mid-upload, restarted ------

MIB = 1024 * 1024
ORIGINAL = b"the previous content, which must survive\n" * 1000
SENT = os.urandom(4 * MIB)
#: what must have reached the disk before the kill (the last bytes may still be in the
#: server's write buffer, and die with it)
HALF = len(SENT) // 2
DEADLINE = 30.0


def _config(tmp_path: Path, age: str | None = None) -> tuple[Path, Path]:
    """A configuration with one read-write anonymous account; (file, its storage root)."""
    files = tmp_path / "files"
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
[[listeners]]
host = "{HOST}"
port = 0

[storage]
root = "{files}"
{f'stale_temporary_age = {age}' if age is not None else ''}

[[users.static]]
login = "anonymous"
permissions = ["/:rw"]
""")
    root = files / "anonymous"
    root.mkdir(parents=True)
    return config, root


def _poll(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def _temporaries(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if ".gateway-" in p.name)


def _kill_mid_upload(process: GatewayProcess, command: str, reached: Callable[[], bool],
                     rest: int | None = None) -> None:
    """Send SENT with ``command`` over ftplib, keep the transfer open, wait until the
    server has written most of it to disk (``reached``), then kill -9 the server."""
    ftp = ftplib.FTP(timeout=DEADLINE)
    ftp.connect(HOST, process.port)
    ftp.login()
    data = ftp.transfercmd(command, rest)
    data.sendall(SENT)
    _poll(reached, "the upload's bytes on disk")
    process.popen.send_signal(signal.SIGKILL)
    assert process.wait_exit() == -signal.SIGKILL
    data.close()
    ftp.close()


def _listings(port: int) -> list[str]:
    """The lines LIST -a, NLST -a and MLSD give for the root."""
    ftp = ftplib.FTP(timeout=DEADLINE)
    ftp.connect(HOST, port)
    ftp.login()
    try:
        seen: list[str] = []
        for command in ("LIST -a", "NLST -a", "MLSD"):
            ftp.retrlines(command, seen.append)
        return seen
    finally:
        ftp.quit()


def _retr(port: int, name: str) -> bytes:
    ftp = ftplib.FTP(timeout=DEADLINE)
    ftp.connect(HOST, port)
    ftp.login()
    try:
        chunks: list[bytes] = []
        ftp.retrbinary(f"RETR {name}", chunks.append)
        assert ftp.size(name) == len(ORIGINAL)
        return b"".join(chunks)
    finally:
        ftp.quit()


def test_killed_upload_leaves_no_temporary_after_restart(tmp_path: Path, start_gateway) -> None:
    config, root = _config(tmp_path)
    (root / "report.bin").write_bytes(ORIGINAL)
    first = start_gateway("-c", str(config))

    def partial_written() -> bool:
        found = [p for p in _temporaries(root) if ".gateway-partial-" in p.name]
        return bool(found) and _size(found[0]) >= HALF

    _kill_mid_upload(first, "STOR report.bin", partial_written)
    [partial] = _temporaries(root)  # what a kill -9 leaves: the hidden partial file
    assert ".gateway-partial-" in partial.name
    assert (root / "report.bin").read_bytes() == ORIGINAL

    # restarted with an age of 0: every temporary no upload holds is stale.  Local
    # roots are cleaned up before the listeners open, so it is gone once serving.
    second = start_gateway("-c", str(config),
                           env=base_env(GATEWAY_STORAGE_STALE_TEMPORARY_AGE="0"))
    assert _temporaries(root) == []
    assert sorted(p.name for p in root.iterdir()) == ["report.bin"]
    seen = _listings(second.port)
    assert not any("gateway-" in line for line in seen), seen
    assert any(line.endswith("report.bin") for line in seen)
    assert _retr(second.port, "report.bin") == ORIGINAL
    assert "removed" in second.wait_for(r"recovery: removed .*gateway-partial-").group(0)


@pytest.mark.parametrize(
    ("command", "rest", "age"),
    [
        ("APPE log", None, "0"),
        # the default age: a journal of this machine whose writer is gone needs no wait
        ("APPE log", None, None),
        ("STOR log", 1000, None),  # REST inside the file: old bytes overwritten
    ],
    ids=["appe-age-0", "appe-default-age", "rest-stor"],
)
def test_killed_append_comes_back_to_the_previous_content(
    tmp_path: Path, start_gateway, command: str, rest: int | None, age: str | None
) -> None:
    config, root = _config(tmp_path, age)
    log = root / "log"
    log.write_bytes(ORIGINAL)
    first = start_gateway("-c", str(config))
    start = rest if rest is not None else len(ORIGINAL)
    _kill_mid_upload(first, command, lambda: _size(log) >= start + HALF, rest=rest)
    [journal] = _temporaries(root)
    assert ".gateway-undo-" in journal.name
    written = log.read_bytes()  # half-written by the killed upload
    assert written == ORIGINAL[:start] + SENT[: len(written) - start]

    second = start_gateway("-c", str(config))
    assert log.read_bytes() == ORIGINAL
    assert sorted(p.name for p in root.iterdir()) == ["log"]
    seen = _listings(second.port)
    assert not any("gateway-" in line for line in seen), seen
    assert _retr(second.port, "log") == ORIGINAL
    second.wait_for(r"recovery: restored .*gateway-undo-")
