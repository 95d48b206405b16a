"""Output a client or a log reader can trust.

- Names FTP creates never hold CR, LF or NUL (553, nothing made); names that exist
  already with line breaks (made outside FTP) are one entry in every listing, NLST too.
- Every log and xferlog line is written whatever the bytes of the names in it, and one
  event is one line: a byte that is not UTF-8 no longer loses the line ("--- Logging
  error ---"), and a lone CR no longer forges one.
"""

from __future__ import annotations

import asyncio
import ftplib
import io
import json
import logging
import os
import re
import sys
from pathlib import Path

import pytest

from gateway.observe.logs import JsonFormatter, TextFormatter, configure_logging, escape_log_text
from gateway.observe.xferlog import XferLog, format_xferlog_line
from gateway.server.events import TransferRecord
from tests.server.conftest import HOST, STEP, RawClient
from tests.service.conftest import run_cli, start_gateway  # noqa: F401  (fixture)

# ----------------------------------------------------------------------------- names


async def upload(client: RawClient, command: bytes, data: bytes = b"x") -> str:
    """Send a STOR-like command; the final reply code (553 when refused at once)."""
    reader, writer = await client.open_data()
    reply = await client.cmd(command)
    if reply.code != "150":
        writer.close()
        return reply.code
    writer.write(data)
    writer.close()
    return (await client.reply()).code


@pytest.mark.parametrize("name", [b"a\rb.txt", b"\rforged", b"dir\r/x.txt", b"a\r\rb"])
async def test_names_with_cr_are_refused_by_every_creating_command(server, raw, root: Path, name: bytes) -> None:
    (root / "old.txt").write_bytes(b"old")
    client = await raw(server)
    for verb in (b"STOR", b"APPE", b"STOU"):
        code = await upload(client, verb + b" " + name + b"\r\n")
        assert code == "553", (verb, name, code)
    for command in (b"MKD ", b"XMKD ", b"MFMT 20200101000000 "):
        reply = await client.cmd(command + name + b"\r\n")
        assert reply.code == "553", (command, name, reply)
        assert reply.text.startswith("file name not allowed"), reply
    await client.expect("RNFR old.txt", "350")
    reply = await client.cmd(b"RNTO " + name + b"\r\n")
    assert reply.code == "553", reply
    assert sorted(os.listdir(root)) == ["old.txt"]
    # the session goes on, and ordinary names still work
    assert await upload(client, b"STOR fine.txt\r\n") == "226"
    await client.expect("RNFR fine.txt", "350")
    await client.expect("RNTO still fine.txt", "250")
    assert sorted(os.listdir(root)) == ["old.txt", "still fine.txt"]


async def test_names_with_nul_are_refused_and_make_nothing(server, raw, root: Path) -> None:
    client = await raw(server)
    for command in (b"MKD a\0b\r\n", b"RNTO a\0b\r\n"):
        reply = await client.cmd(command)
        assert reply.code.startswith("5"), reply
    assert await upload(client, b"STOR a\0b\r\n") in ("501", "553")
    assert os.listdir(root) == []


async def listing(client: RawClient, command: str) -> bytes:
    reader, writer = await client.open_data()
    await client.expect(command, "150")
    async with asyncio.timeout(STEP):
        data = await reader.read()
    writer.close()
    reply = await client.reply()
    assert reply.code == "226", reply
    return data


async def test_existing_names_with_line_breaks_are_one_entry_in_every_listing(server, raw, root: Path) -> None:
    # made outside FTP, as a shell or another service would
    (root / "nl\nforged.txt").write_bytes(b"1")
    (root / "cr\rforged.txt").write_bytes(b"2")
    (root / "plain.txt").write_bytes(b"3")
    client = await raw(server)
    expected = [b"cr\0forged.txt", b"nl\0forged.txt", b"plain.txt"]
    nlst = (await listing(client, "NLST")).split(b"\r\n")
    assert sorted(nlst[:-1]) == expected and nlst[-1] == b"", nlst
    nlst_glob = (await listing(client, "NLST *forged*")).split(b"\r\n")
    assert sorted(nlst_glob[:-1]) == expected[:2], nlst_glob
    for command in ("LIST", "MLSD"):
        lines = (await listing(client, command)).split(b"\r\n")
        assert lines[-1] == b"", (command, lines)
        assert sorted(line.rsplit(b" ", 1)[-1] for line in lines[:-1]) == expected, (command, lines)
        assert not any(b"\r" in line or b"\n" in line for line in lines), (command, lines)
    stat = await client.expect("STAT /", "212")
    assert len(stat.lines) == 2 + 3, stat  # header, three entries, footer
    mlst = await client.expect(b"MLST cr\rforged.txt\r\n", "250")
    assert len(mlst.lines) == 3 and mlst.lines[1].endswith("cr\0forged.txt"), mlst


async def test_a_subclass_listing_hook_cannot_forge_entries_either(make_server, raw, root: Path) -> None:
    import gateway

    class Hooked(gateway.Server):
        async def build_list_string(self, connection, path):  # aioftp's hook
            return f"-rw-r--r-- 1 ftp ftp 1 Jan 1 2020 {path.name}"

    (root / "nl\nforged.txt").write_bytes(b"1")
    server = await make_server(cls=Hooked)
    client = await raw(server)
    lines = (await listing(client, "LIST")).split(b"\r\n")
    assert lines == [b"-rw-r--r-- 1 ftp ftp 1 Jan 1 2020 nl\0forged.txt", b""]


# ----------------------------------------------------------------------------- logs


def record(**fields: object) -> logging.LogRecord:
    base = dict(name="gateway.transfer", level=logging.INFO, pathname=__file__, lineno=1,
                msg="session %s: STOR %s", args=(7, "/caf\udce9\rINFO forged"), exc_info=None)
    base.update(fields)
    return logging.LogRecord(**base)  # type: ignore[arg-type]


def test_escape_log_text() -> None:
    assert escape_log_text("plain name.txt") == "plain name.txt"
    assert escape_log_text("caf\udce9") == "caf\\xe9"  # the byte that was not UTF-8
    assert escape_log_text("a\rb\nc\td") == "a\\rb\\nc\\td"
    # every line break a log reader might split on
    for sep in ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"):
        assert len(("x" + escape_log_text(f"a{sep}b") + "x").splitlines()) == 1, repr(sep)
    assert escape_log_text("é ü 漢") == "é ü 漢"  # printable text stays readable


def test_text_and_json_formatters_give_one_encodable_line() -> None:
    for formatter in (TextFormatter("%(levelname)s %(message)s"), JsonFormatter()):
        line = formatter.format(record())
        assert len(line.splitlines()) == 1, line
        line.encode("utf-8")  # strict: a surrogate would raise
    text = TextFormatter("%(message)s").format(record())
    assert text == "session 7: STOR /caf\\xe9\\rINFO forged"
    entry = json.loads(JsonFormatter().format(record()))
    # JSON escapes the CR itself (a reader decodes it back); the non-UTF-8 byte is ours
    assert entry["session"] == 7 and entry["message"] == "STOR /caf\\xe9\rINFO forged"


def test_a_traceback_is_part_of_its_one_line() -> None:
    try:
        raise OSError("bad name 'x\ny'")
    except OSError:
        failed = record(exc_info=sys.exc_info())
    line = TextFormatter("%(message)s").format(failed)
    assert len(line.splitlines()) == 1 and "OSError" in line, line
    entry = json.loads(JsonFormatter().format(failed))
    assert "OSError: bad name" in entry["exception"]


def test_configured_log_file_writes_every_line(tmp_path: Path) -> None:
    """``configure_logging`` as ``gateway serve`` calls it, with ``[logging] file``."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.getLogger("gateway").level)
    log = tmp_path / "gateway.log"
    try:
        configure_logging("info", "text", log)
        logger = logging.getLogger("gateway.test")
        logger.info("session %s: STOR %s", 1, "/caf\udce9.txt")
        logger.info("session %s: STOR %s", 2, "/a\r2026-01-01 INFO [gateway] forged")
        for handler in root.handlers:
            handler.flush()
        lines = log.read_bytes().decode("utf-8").splitlines()
        assert len(lines) == 2, lines
        assert lines[0].endswith("session 1: STOR /caf\\xe9.txt"), lines
        assert lines[1].endswith("session 2: STOR /a\\r2026-01-01 INFO [gateway] forged"), lines
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        logging.getLogger("gateway").setLevel(saved[2])


def test_xferlog_line_keeps_the_bytes_and_its_fields(tmp_path: Path) -> None:
    rec = TransferRecord(command="STOR", direction="i", path="/my caf\udce9\r.txt", login="al ice",
                         client_host=HOST, binary=True, backend="local")
    rec.started = 1_700_000_000.0
    rec.finish("complete")
    line = format_xferlog_line(rec)
    fields = line.split()
    assert len(fields) == 18, line  # ctime is 5 fields
    assert fields[8] == "/my_caf\\xe9\\r.txt" and fields[13] == "al_ice", line
    xfer = XferLog(tmp_path / "xferlog")
    try:
        xfer.transfer(None, rec)
    finally:
        xfer.close()
    assert (tmp_path / "xferlog").read_bytes().decode("utf-8").splitlines() == [line]


def test_gateway_serve_logs_names_whatever_their_bytes(tmp_path: Path, start_gateway) -> None:  # noqa: F811
    """End to end: ``gateway serve`` with ``[logging] file`` and ``xferlog``; a latin-1
    client uploads ``café.txt`` (byte 0xE9) and sends a name with a lone CR."""
    log = tmp_path / "log" / "gateway.log"
    xferlog = tmp_path / "log" / "xferlog"
    done = run_cli("hash-password", "--password-stdin", cwd=tmp_path, stdin="pw\n")
    assert done.returncode == 0, done.stderr
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
[[listeners]]
host = "{HOST}"
port = 0

[storage]
root = "{tmp_path / 'files'}"

[[users.static]]
login = "alice"
password_hash = "{done.stdout.strip()}"

[logging]
level = "debug"
file = "{log}"
xferlog = "{xferlog}"
""")
    server = start_gateway("-c", str(config))
    ftp = ftplib.FTP(timeout=STEP, encoding="latin-1")
    ftp.connect(HOST, server.port)
    ftp.login("alice", "pw")
    ftp.storbinary("STOR café.txt", io.BytesIO(b"data"))
    # ftplib refuses to send a CR in a command; the bytes go on its socket as they are
    ftp.sock.sendall(b"SIZE x\r2026-01-01 00:00:00,000 INFO [gateway.server] forged\r\n")
    with pytest.raises(ftplib.error_perm, match="^550"):
        ftp.getresp()
    ftp.quit()
    server.signal()
    assert server.wait_exit() == 0
    assert "Logging error" not in server.output, server.output
    assert (tmp_path / "files" / "alice" / "caf\xe9.txt".encode("latin-1").decode("utf-8", "surrogateescape")).exists()
    text = log.read_bytes().decode("utf-8")  # strict: all of it is UTF-8
    lines = text.splitlines()  # splits on a lone CR too
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \[")
    assert lines and all(stamp.match(line) for line in lines), lines
    assert not any("forged" in line and "SIZE" not in line for line in lines), lines
    assert any("STOR /caf\\xe9.txt" in line and "complete" in line for line in lines), lines
    assert any("SIZE x\\r2026-01-01" in line for line in lines), lines
    transfers = xferlog.read_bytes().decode("utf-8").splitlines()
    assert len(transfers) == 1 and transfers[0].split()[8] == "/caf\\xe9.txt", transfers
