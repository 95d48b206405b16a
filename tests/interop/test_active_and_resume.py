"""Active mode, resume both ways, STOU/STAT and legacy devices with real clients
against ``python -m gateway``; every transfer is checked by sha256."""

from __future__ import annotations

import ftplib
import hashlib
import io
import os
import re
from pathlib import Path

import pytest

from tests.interop.conftest import (
    HOST,
    PASSWORD,
    USER,
    ServerFactory,
    TlsFiles,
    make_tree,
    run,
    sha256_file,
    tree_digest,
)
from tests.interop.test_curl import curl, tls_args
from tests.interop.test_lftp import lftp, sent_commands

TIMEOUT = 30


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def retr(ftp: ftplib.FTP, name: str) -> bytes:
    chunks: list[bytes] = []
    ftp.retrbinary(f"RETR {name}", chunks.append)
    return b"".join(chunks)


@pytest.mark.parametrize("use_tls", [False, True], ids=["ftp", "ftps"])
def test_ftplib_active_mode(gateway_server: ServerFactory, tls_files: TlsFiles, use_tls: bool) -> None:
    server = gateway_server(tls=use_tls)
    assert server.root is not None
    payload = os.urandom(3 * 1024 * 1024 + 11)
    ftp: ftplib.FTP
    if use_tls:
        ftp = ftplib.FTP_TLS(context=tls_files.client_context(), timeout=TIMEOUT)
    else:
        ftp = ftplib.FTP(timeout=TIMEOUT)
    ftp.connect(HOST, server.port)
    if isinstance(ftp, ftplib.FTP_TLS):
        ftp.auth()
        ftp.login(USER, PASSWORD)
        ftp.prot_p()
    else:
        ftp.login(USER, PASSWORD)
    ftp.set_pasv(False)
    try:
        assert ftp.storbinary("STOR active.bin", io.BytesIO(payload)).startswith("226")
        assert sha256_file(server.root / "active.bin") == sha256(payload)
        assert sha256(retr(ftp, "active.bin")) == sha256(payload)
        lines: list[str] = []
        ftp.retrlines("LIST", lines.append)
        assert [line.split()[-1] for line in lines] == ["active.bin"]
        # a bounce attempt is refused and the session goes on
        with pytest.raises(ftplib.error_perm, match="^501"):
            ftp.sendcmd("PORT 127,0,0,2,200,10")
        assert ftp.sendcmd("NOOP").startswith("200")
    finally:
        ftp.quit()


def test_curl_active_mode_resume_both_ways(gateway_server: ServerFactory, tmp_path: Path) -> None:
    server = gateway_server()
    assert server.root is not None
    payload = os.urandom(2 * 1024 * 1024 + 5)
    local = tmp_path / "local.bin"
    local.write_bytes(payload)

    # --ftp-port -: active mode on the control connection's address
    up = curl("-v", "--ftp-port", "-", "-T", str(local), server.url("/active.bin"), cwd=tmp_path)
    assert re.search(r"^> (EPRT|PORT) ", up.stderr, re.M), up.stderr
    assert sha256_file(server.root / "active.bin") == sha256(payload)
    down = tmp_path / "down.bin"
    curl("--ftp-port", "-", "-o", str(down), server.url("/active.bin"), cwd=tmp_path)
    assert sha256_file(down) == sha256(payload)
    # --disable-eprt: PORT instead of EPRT
    verbose = curl("-v", "--ftp-port", "-", "--disable-eprt", server.url("/"), cwd=tmp_path)
    assert "> PORT " in verbose.stderr and "> EPRT" not in verbose.stderr
    assert "active.bin" in verbose.stdout

    # -C - download: a partial local copy is completed with REST
    partial = tmp_path / "partial.bin"
    partial.write_bytes(payload[:777_777])
    verbose = curl("-v", "-C", "-", "-o", str(partial), server.url("/active.bin"), cwd=tmp_path)
    assert "> REST 777777" in verbose.stderr, verbose.stderr
    assert sha256_file(partial) == sha256(payload)

    # -C - upload: curl asks SIZE, then appends the rest
    (server.root / "half.bin").write_bytes(payload[:1_000_003])
    verbose = curl("-v", "-C", "-", "-T", str(local), server.url("/half.bin"), cwd=tmp_path)
    assert "> SIZE half.bin" in verbose.stderr and "> APPE half.bin" in verbose.stderr, verbose.stderr
    assert sha256_file(server.root / "half.bin") == sha256(payload)

    # --disable-epsv with --ftp-create-dirs
    curl("--disable-epsv", "--ftp-create-dirs", "-T", str(local), server.url("/x/y/z/f.bin"), cwd=tmp_path)
    assert sha256_file(server.root / "x" / "y" / "z" / "f.bin") == sha256(payload)


def test_curl_ssl_reqd_roundtrip(gateway_server: ServerFactory, tls_files: TlsFiles, tmp_path: Path) -> None:
    # Passive: curl 7.88 accepts an active FTPS data connection but never starts its
    # TLS handshake (a curl bug); active FTPS is covered by ftplib and lftp.
    server = gateway_server(tls=True)
    assert server.root is not None
    payload = os.urandom(1024 * 1024 + 1)
    local = tmp_path / "local.bin"
    local.write_bytes(payload)
    up = curl(*tls_args(tls_files), "-v", "-T", str(local), server.url("/t.bin"), cwd=tmp_path)
    assert "> PROT P" in up.stderr, up.stderr
    assert sha256_file(server.root / "t.bin") == sha256(payload)
    down = tmp_path / "down.bin"
    curl(*tls_args(tls_files), "-C", "-", "-o", str(down), server.url("/t.bin"), cwd=tmp_path)
    assert sha256_file(down) == sha256(payload)


def test_lftp_active_mode_mirror_and_mget(gateway_server: ServerFactory, tmp_path: Path) -> None:
    server = gateway_server()
    assert server.root is not None
    source = tmp_path / "source"
    make_tree(source, files=30, seed=11)
    (source / "a.jpg").write_bytes(b"jpeg one")
    (source / "b.jpg").write_bytes(b"jpeg two")
    expected = tree_digest(source)
    got = tmp_path / "got"
    got.mkdir()
    result = lftp(
        server,
        ["set ftp:passive-mode off", f"mirror -R --no-perms {source} /tree",
         f"lcd {got}", "mget /tree/*.jpg"],
        cwd=tmp_path, mlsd=False,
    )
    commands = sent_commands(result.stderr)
    assert ("PORT" in commands or "EPRT" in commands) and "PASV" not in commands, commands
    assert tree_digest(server.root / "tree") == expected
    assert (got / "a.jpg").read_bytes() == b"jpeg one"
    assert (got / "b.jpg").read_bytes() == b"jpeg two"
    assert sorted(p.name for p in got.iterdir()) == ["a.jpg", "b.jpg"]  # the glob matched only these
    # and back with mirror, then diff -r against the source
    back = tmp_path / "back"
    lftp(server, ["set ftp:passive-mode off", f"mirror --no-perms /tree {back}"], cwd=tmp_path)
    run(["diff", "-r", str(source), str(back)], cwd=tmp_path)


def test_legacy_device_server_with_cp1251_names(gateway_server: ServerFactory, tmp_path: Path) -> None:
    server = gateway_server(extra_args=("--legacy-devices", "all", "--encoding", "cp1251"))
    assert server.root is not None
    name = "снимок.jpg"
    ftp = ftplib.FTP(timeout=TIMEOUT, encoding="cp1251")
    ftp.connect(HOST, server.port)
    ftp.login(USER, PASSWORD)
    try:
        assert ftp.sendcmd("ALLO 100").startswith("200")
        ftp.storbinary(f"STOR камера/{name}", io.BytesIO(b"frame"))  # parent created
        assert ftp.mkd("камера").endswith("камера")  # exists: still 257
        assert ftp.nlst("камера") in ([f"камера/{name}"], [name])
        assert retr(ftp, f"камера/{name}") == b"frame"
    finally:
        ftp.quit()
    assert (server.root / "камера" / name).read_bytes() == b"frame"
