"""Random command lines on one session: every one gets a well-formed reply, in order."""

from __future__ import annotations

import os
import random
from pathlib import Path

from gateway.protocol.commands import COMMANDS

from .conftest import read_all

ARGUMENTS = [
    "",
    " ",
    "x",
    "a.txt",
    "sub",
    "../../..",
    "/",
    "*",
    "*.txt",
    "-la",
    "0",
    "-1",
    "99999999999999999999",
    "ALL",
    "A",
    "I",
    "L 8",
    "S",
    "F",
    "P",
    "C",
    "UTF8 ON",
    "a\0b",
    "x" * 300,
    "caf\udce9",
    "\udcff\udcfe",
    "a/../../b",
    "   spaced   ",
]


async def test_random_commands_get_well_formed_replies(make_server, raw, root: Path) -> None:
    (root / "a.txt").write_bytes(b"a")
    (root / "sub").mkdir()
    server = await make_server(wait_future_timeout=0.05)
    client = await raw(server)
    rng = random.Random(20240601)
    verbs = sorted(v.upper() for v in COMMANDS if v not in ("quit",)) + ["FOO", "X", "", "RETRX"]
    for _ in range(400):
        verb = rng.choice(verbs)
        argument = rng.choice(ARGUMENTS)
        if rng.random() < 0.1:
            argument = os.urandom(rng.randrange(1, 40)).replace(b"\n", b"").decode("latin-1")
        line = f"{verb} {argument}" if argument else verb
        reply = await client.cmd(line.encode("utf-8", "surrogateescape") + b"\r\n")
        assert reply.code[0] in "12345", (line, reply)
        while reply.code.startswith("1"):  # a transfer started: its final reply follows
            reply = await client.reply()
            assert reply.code[0] in "2345", (line, reply)
        if verb in ("USER", "PASS", "ACCT", "AUTH") and reply.code != "230":
            await client.login()  # keep the session logged in for the rest
    await client.login()
    await client.expect("NOOP", "200")
    await client.expect("CWD /", "250")
    await client.expect("TYPE I", "200")
    await client.expect("REST 0", "350")
    reader, writer = await client.open_data()
    await client.expect("STOR /after-fuzz", "150")
    writer.write(b"still fine")
    writer.close()
    assert (await client.reply()).code == "226"
    reader, writer = await client.open_data()
    await client.expect("RETR /after-fuzz", "150")
    assert await read_all(reader) == b"still fine"
    writer.close()
    assert (await client.reply()).code == "226"
