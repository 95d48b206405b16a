"""Hypothesis drives whole sessions: random command sequences and arguments against a
real server.  Every command gets a well-formed reply in time, the server logs no
traceback, the session still works afterwards, and nothing outside the root changes."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gateway
from gateway.protocol.commands import COMMANDS

from .conftest import HOST, RawClient

VERBS = sorted(v.upper() for v in COMMANDS if v not in ("quit", "auth")) + ["FOO", "X", "RETRX", "SITE"]
ARGUMENTS = st.sampled_from([
    "", " ", "a.txt", "sub", "sub/b.txt", "../outside/secret.txt", "../../..", "/", "*", "*.txt",
    "-la", "-la ../", "0", "100", "-1", "ALL", "A", "I", "L 8", "S", "F", "C", "P", "UTF8 ON",
    "UTF8 OFF", "MLST size;", "CHMOD 777 ../outside", "CHMOD 600 a.txt", "HELP", "UTIME 20200101000000 a.txt",
    "20200101000000 a.txt", "20200101000000 ../outside/secret.txt", "|1|127.0.0.2|5000|",
    "127,0,0,1,0,21", "|2|::1|5000|", "new", "new/dir", "../escape", "a\0b", "x" * 300,
    "caf\udce9", "ftp.example.com",
]) | st.text(max_size=30).map(lambda s: s.replace("\n", "").replace("\r", ""))


class ErrorRecorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def snapshot(path: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(path)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(path.rglob("*"))
    }


async def run_session(root: Path, commands: list[tuple[str, str]]) -> int:
    answered = 0
    server = gateway.Server([gateway.User(base_path=root)], wait_future_timeout=0.05)
    await server.start(HOST, 0)
    try:
        client = await RawClient.connect(server.server_port)
        try:
            await client.login()
            for verb, argument in commands:
                line = f"{verb} {argument}" if argument else verb
                reply = await client.cmd(line.encode("utf-8", "surrogateescape") + b"\r\n")
                assert reply.code[0] in "12345", (line, reply)
                answered += 1
                while reply.code.startswith("1"):  # a transfer started: its end follows
                    reply = await client.reply()
                    assert reply.code[0] in "2345", (line, reply)
                if verb in ("USER", "PASS", "ACCT", "REIN") and reply.code != "230":
                    await client.login()
            await client.login()
            await client.expect("CWD /", "250")
            await client.expect("NOOP", "200")
            await client.expect("QUIT", "221")
        finally:
            await client.close()
    finally:
        async with asyncio.timeout(10):
            await server.close()
    return answered


@settings(
    max_examples=150, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(st.tuples(st.sampled_from(VERBS), ARGUMENTS), min_size=1, max_size=25))
def test_random_sessions(tmp_path: Path, commands: list[tuple[str, str]]) -> None:
    base = tmp_path / "fuzz"
    root = base / "root"
    outside = base / "outside"
    root.mkdir(parents=True, exist_ok=True)
    outside.mkdir(exist_ok=True)
    (outside / "secret.txt").write_bytes(b"secret")
    (root / "a.txt").write_bytes(b"a")
    (root / "sub").mkdir(exist_ok=True)
    before = snapshot(outside)
    recorder = ErrorRecorder()
    logger = logging.getLogger("gateway")
    logger.addHandler(recorder)
    try:
        answered = asyncio.run(asyncio.wait_for(run_session(root, commands), 60))
    finally:
        logger.removeHandler(recorder)
    assert answered == len(commands)
    assert snapshot(outside) == before, commands  # nothing escaped the root
    assert sorted(p.name for p in base.iterdir()) == ["outside", "root"]
    assert recorder.records == [], [r.getMessage() for r in recorder.records]
