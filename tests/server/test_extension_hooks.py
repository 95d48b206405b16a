"""aioftp's extension points are the ones the server goes through: a subclass that
overrides how listings are built, or how paths are found, changes what clients see."""

from __future__ import annotations

from pathlib import Path

import gateway

from .conftest import ftp_login, in_thread, list_lines


class TaggedListings(gateway.Server):
    async def build_list_string(self, connection, path) -> str:
        return f"custom {path.name}"

    async def build_mlsx_string(self, connection, path) -> str:
        return f"type=file; tagged-{path.name}"


class AliasedPaths(gateway.Server):
    def get_paths(self, connection, path):
        # /latest is served from /2024/report.txt
        if str(path) == "/latest":
            path = "/2024/report.txt"
        return super().get_paths(connection, path)


async def test_listing_hooks_are_used(make_server, root: Path) -> None:
    (root / "a.txt").write_bytes(b"a")
    (root / "b.txt").write_bytes(b"b")
    server = await make_server(cls=TaggedListings)

    def scenario() -> tuple[list[str], list[str]]:
        ftp = ftp_login(server.server_port)
        listed = list_lines(ftp, "LIST")
        machine = list_lines(ftp, "MLSD")
        ftp.quit()
        return listed, machine

    listed, machine = await in_thread(scenario)
    assert sorted(listed) == ["custom a.txt", "custom b.txt"]
    assert sorted(machine) == ["type=file; tagged-a.txt", "type=file; tagged-b.txt"]


async def test_get_paths_override_is_used_by_every_command(make_server, root: Path) -> None:
    (root / "2024").mkdir()
    (root / "2024" / "report.txt").write_bytes(b"quarterly")
    server = await make_server(cls=AliasedPaths)

    def scenario() -> tuple[str, bytes]:
        ftp = ftp_login(server.server_port)
        size = ftp.sendcmd("SIZE /latest")
        chunks: list[bytes] = []
        ftp.retrbinary("RETR /latest", chunks.append)
        ftp.quit()
        return size, b"".join(chunks)

    size, data = await in_thread(scenario)
    assert size == "213 9"
    assert data == b"quarterly"
