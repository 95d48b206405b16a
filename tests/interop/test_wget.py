"""wget (recursive FTP retrieval) against ``python -m gateway``."""

from __future__ import annotations

from pathlib import Path

from tests.interop.conftest import ServerFactory, make_tree, require_tool, run, tree_digest


def test_recursive_download(gateway_server: ServerFactory, tmp_path: Path) -> None:
    server = gateway_server()
    assert server.root is not None
    expected = make_tree(server.root / "dir", files=12, seed=3)
    (server.root / "outside.txt").write_bytes(b"not under dir/")
    out = tmp_path / "out"
    out.mkdir()
    result = run(
        [require_tool("wget"), "-r", "-nH", "-nv", "--tries=1", "--timeout=30",
         "-P", str(out), server.url("/dir/")],
        cwd=tmp_path,
    )
    assert tree_digest(out / "dir") == expected, result.stderr  # sha256 of every file
    run(["diff", "-r", str(server.root / "dir"), str(out / "dir")], cwd=tmp_path)
    assert not (out / "outside.txt").exists()
    assert not list(out.rglob(".listing"))  # wget removed its listing files


def test_single_file_and_missing_file(gateway_server: ServerFactory, tmp_path: Path) -> None:
    server = gateway_server()
    assert server.root is not None
    (server.root / "one.bin").write_bytes(bytes(range(256)) * 1000)
    target = tmp_path / "one.bin"
    run([require_tool("wget"), "-nv", "--tries=1", "-O", str(target), server.url("/one.bin")],
        cwd=tmp_path)
    assert target.read_bytes() == (server.root / "one.bin").read_bytes()
    missing = run([require_tool("wget"), "-nv", "--tries=1", "-O", str(tmp_path / "x"),
                   server.url("/missing.bin")], cwd=tmp_path, check=False)
    assert missing.returncode == 8, missing.stderr  # server issued an error response
