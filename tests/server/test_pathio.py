"""The same smoke session on every path-I/O the server can be given."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

import gateway

from .conftest import User, expect_error, ftp_login, in_thread, list_lines, retr_bytes

FACTORIES = pytest.mark.parametrize("factory", ["PathIO", "AsyncPathIO", "MemoryPathIO"])


def _user(factory: str, root: Path) -> User:
    # the memory tree is its own world: its root is "/"
    return User(base_path="/" if factory == "MemoryPathIO" else root)


@FACTORIES
async def test_smoke_transfer(make_server, root: Path, factory: str) -> None:
    server = await make_server([_user(factory, root)], path_io_factory=getattr(gateway, factory))
    payload = os.urandom(3 * 1024 * 1024 + 1)

    def scenario() -> None:
        ftp = ftp_login(server.server_port)
        assert ftp.mkd("dir") == "/dir"
        ftp.cwd("dir")
        assert ftp.storbinary("STOR blob", io.BytesIO(payload)).startswith("226")
        assert ftp.storbinary("APPE blob", io.BytesIO(b"tail")).startswith("226")
        assert ftp.size("blob") == len(payload) + 4
        assert retr_bytes(ftp, "blob") == payload + b"tail"
        chunks: list[bytes] = []
        ftp.retrbinary("RETR blob", chunks.append, rest=len(payload))
        assert b"".join(chunks) == b"tail"
        assert ftp.storlines("STOR text", io.BytesIO(b"a\nb\n")).startswith("226")
        lines: list[str] = []
        ftp.retrlines("RETR text", lines.append)
        assert lines == ["a", "b"]
        assert sorted(line.split()[-1] for line in list_lines(ftp)) == ["blob", "text"]
        assert sorted(ftp.nlst()) == ["blob", "text"]
        facts = dict(ftp.mlsd())
        assert facts["blob"]["size"] == str(len(payload) + 4)
        assert ftp.sendcmd("MDTM blob").startswith("213 ")
        ftp.rename("blob", "/moved")
        expect_error("550", ftp.size, "blob")
        ftp.cwd("/")
        assert ftp.size("moved") == len(payload) + 4
        ftp.delete("moved")
        ftp.delete("dir/text")
        ftp.rmd("dir")
        assert ftp.nlst() == []
        expect_error("550", retr_bytes, ftp, "moved")
        ftp.quit()

    await in_thread(scenario)
    if factory != "MemoryPathIO":
        assert os.listdir(root) == []


async def test_memory_tree_is_shared_between_sessions(make_server) -> None:
    server = await make_server([User(base_path="/")], path_io_factory=gateway.MemoryPathIO)

    def writer() -> None:
        ftp = ftp_login(server.server_port)
        ftp.storbinary("STOR shared", io.BytesIO(b"seen by all"))
        ftp.quit()

    def reader() -> bytes:
        ftp = ftp_login(server.server_port)
        try:
            return retr_bytes(ftp, "shared")
        finally:
            ftp.quit()

    await in_thread(writer)
    assert await in_thread(reader) == b"seen by all"
