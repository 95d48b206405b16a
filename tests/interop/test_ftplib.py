"""Python's ftplib (plain and explicit FTPS) against ``python -m gateway``."""

from __future__ import annotations

import ftplib
import hashlib
import os
import socket
import ssl
from pathlib import Path

import pytest

from tests.interop.conftest import (
    BIG_SIZE,
    HOST,
    MIB,
    PASSWORD,
    USER,
    BigFile,
    GatewayProcess,
    ServerFactory,
    TlsFiles,
    sha256_file,
)

TIMEOUT = 60


def connect(server: GatewayProcess) -> ftplib.FTP:
    ftp = ftplib.FTP(timeout=TIMEOUT)
    ftp.connect(HOST, server.port)
    ftp.login(USER, PASSWORD)
    return ftp


class RecordingFTP_TLS(ftplib.FTP_TLS):
    """FTP_TLS that remembers the TLS version of every data connection."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.data_tls_versions: list[str | None] = []

    def ntransfercmd(self, cmd, rest=None):  # type: ignore[no-untyped-def]
        conn, size = super().ntransfercmd(cmd, rest)
        self.data_tls_versions.append(conn.version() if isinstance(conn, ssl.SSLSocket) else None)
        return conn, size


def download_sha256(ftp: ftplib.FTP, name: str, *, rest: int | None = None) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0

    def feed(chunk: bytes) -> None:
        nonlocal size
        digest.update(chunk)
        size += len(chunk)

    reply = ftp.retrbinary(f"RETR {name}", feed, blocksize=MIB, rest=rest)
    assert reply.startswith("226"), reply
    return digest.hexdigest(), size


def upload(ftp: ftplib.FTP, name: str, source: Path) -> None:
    with open(source, "rb") as file:
        reply = ftp.storbinary(f"STOR {name}", file, blocksize=MIB)
    assert reply.startswith("226"), reply


def test_login_list_mlsd_mkd_rename_delete(gateway_server: ServerFactory) -> None:
    server = gateway_server()
    assert server.root is not None
    (server.root / "hello.txt").write_bytes(b"hello world\n")
    ftp = connect(server)
    try:
        assert ftp.pwd() == "/"
        # LIST
        lines: list[str] = []
        ftp.retrlines("LIST", lines.append)
        assert len(lines) == 1 and lines[0].split()[-1] == "hello.txt", lines
        assert lines[0].startswith("-"), lines
        # MLSD
        facts = dict(ftp.mlsd())
        assert facts["hello.txt"]["type"] == "file"
        assert facts["hello.txt"]["size"] == "12"
        # MKD / CWD / RMD
        assert ftp.mkd("sub") in ("/sub", "sub")
        assert (server.root / "sub").is_dir()
        ftp.cwd("sub")
        assert ftp.pwd() == "/sub"
        ftp.cwd("..")
        facts = dict(ftp.mlsd("/", facts=["type", "size", "modify"]))
        assert facts["sub"]["type"] == "dir"
        assert "modify" in facts["hello.txt"]
        assert "perm" not in facts["hello.txt"]  # OPTS MLST selected the facts
        # RNFR/RNTO
        ftp.rename("hello.txt", "sub/renamed.txt")
        assert not (server.root / "hello.txt").exists()
        assert (server.root / "sub" / "renamed.txt").read_bytes() == b"hello world\n"
        assert ftp.nlst("sub") in (["sub/renamed.txt"], ["renamed.txt"])
        # RMD of a non-empty directory fails, DELE then RMD succeed
        with pytest.raises(ftplib.error_perm):
            ftp.rmd("sub")
        ftp.delete("sub/renamed.txt")
        assert not (server.root / "sub" / "renamed.txt").exists()
        ftp.rmd("sub")
        assert not (server.root / "sub").exists()
        with pytest.raises(ftplib.error_perm, match="^550"):
            ftp.delete("missing.txt")
        assert list(server.root.iterdir()) == []
    finally:
        ftp.quit()


@pytest.mark.slow
def test_upload_download_resume_100mib(gateway_server: ServerFactory, big_file: BigFile) -> None:
    server = gateway_server()
    assert server.root is not None
    ftp = connect(server)
    try:
        ftp.mkd("big")
        upload(ftp, "big/random.bin", big_file.path)
        stored = server.root / "big" / "random.bin"
        assert stored.stat().st_size == BIG_SIZE
        assert sha256_file(stored) == big_file.sha256
        assert ftp.size("big/random.bin") == BIG_SIZE

        assert download_sha256(ftp, "big/random.bin") == (big_file.sha256, BIG_SIZE)

        # resume: REST offset then RETR returns exactly the tail
        offset = BIG_SIZE - 7 * MIB + 12345
        digest, size = download_sha256(ftp, "big/random.bin", rest=offset)
        assert size == BIG_SIZE - offset
        assert digest == big_file.tail_sha256(offset)

        ftp.delete("big/random.bin")
        ftp.rmd("big")
        assert not (server.root / "big").exists()
    finally:
        ftp.quit()


@pytest.mark.slow
@pytest.mark.parametrize("version", ["TLSv1.2", "TLSv1.3"])
def test_tls_upload_download_100mib(
    gateway_server: ServerFactory, tls_files: TlsFiles, big_file: BigFile, version: str
) -> None:
    server = gateway_server(tls=True)
    assert server.root is not None
    if version == "TLSv1.2":
        context = tls_files.client_context(maximum=ssl.TLSVersion.TLSv1_2)
    else:
        context = tls_files.client_context(minimum=ssl.TLSVersion.TLSv1_3)
    ftp = RecordingFTP_TLS(context=context, timeout=TIMEOUT)
    ftp.connect(HOST, server.port)
    ftp.auth()
    assert ftp.sock.version() == version
    ftp.login(USER, PASSWORD)
    ftp.prot_p()
    try:
        upload(ftp, "random.bin", big_file.path)
        assert sha256_file(server.root / "random.bin") == big_file.sha256
        assert download_sha256(ftp, "random.bin") == (big_file.sha256, BIG_SIZE)
        assert ftp.data_tls_versions == [version, version]
        lines: list[str] = []
        ftp.retrlines("LIST", lines.append)
        assert [line.split()[-1] for line in lines] == ["random.bin"]
    finally:
        ftp.quit()


def test_tls_refuses_a_client_that_does_not_trust_the_server(
    gateway_server: ServerFactory,
) -> None:
    server = gateway_server(tls=True)
    ftp = ftplib.FTP_TLS(context=ssl.create_default_context(), timeout=TIMEOUT)
    ftp.connect(HOST, server.port)
    with pytest.raises(ssl.SSLCertVerificationError):
        ftp.auth()
    ftp.close()


def eager_tls_download(ftp: ftplib.FTP_TLS, context: ssl.SSLContext, name: str) -> bytes:
    """RETR over a data connection whose ClientHello leaves with the TCP handshake.

    The ClientHello is prepared before connecting (memory BIOs) and sent at once, as
    a fast client (curl) does: the server must not read it as clear text.
    """
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=HOST)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    host, port = ftp.makepasv()
    with socket.create_connection((host, port), timeout=10) as raw:
        raw.sendall(outgoing.read())
        ftp.putcmd(f"RETR {name}")
        received = bytearray()
        handshaken = False
        while True:
            try:
                if not handshaken:
                    tls.do_handshake()
                    handshaken = True
                chunk = tls.read(65536)
                if not chunk:
                    break
                received += chunk
            except ssl.SSLWantReadError:
                if outgoing.pending:
                    raw.sendall(outgoing.read())
                data = raw.recv(65536)
                if not data:
                    break
                incoming.write(data)
            except ssl.SSLZeroReturnError:
                break
        if outgoing.pending:
            raw.sendall(outgoing.read())
    assert ftp.getresp().startswith("150")
    assert ftp.voidresp().startswith("226")
    return bytes(received)


def test_tls_client_hello_at_connect_on_data_connection(
    gateway_server: ServerFactory, tls_files: TlsFiles
) -> None:
    server = gateway_server(tls=True)
    assert server.root is not None
    payload = os.urandom(100_000)
    (server.root / "f.bin").write_bytes(payload)
    context = tls_files.client_context()
    ftp = ftplib.FTP_TLS(context=context, timeout=10)
    ftp.connect(HOST, server.port)
    ftp.login(USER, PASSWORD)  # FTP_TLS.login sends AUTH TLS first
    ftp.prot_p()
    try:
        for _ in range(10):
            assert eager_tls_download(ftp, context, "f.bin") == payload
    finally:
        ftp.quit()


def test_tls_client_hello_right_after_auth_reply(
    gateway_server: ServerFactory, tls_files: TlsFiles
) -> None:
    """The ClientHello sent the instant 234 arrives must reach the TLS layer."""
    server = gateway_server(tls=True)
    context = tls_files.client_context()
    for _ in range(200):  # the race it guards against showed within ~200 tries
        with socket.create_connection((HOST, server.port), timeout=5) as raw:
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = context.wrap_bio(incoming, outgoing, server_hostname=HOST)
            with pytest.raises(ssl.SSLWantReadError):
                tls.do_handshake()
            hello = outgoing.read()
            assert raw.recv(1024).startswith(b"220")
            raw.sendall(b"AUTH TLS\r\n")
            reply = b""
            while not reply.endswith(b"\r\n"):
                reply += raw.recv(1024)
            raw.sendall(hello)  # at once, like curl
            assert reply.startswith(b"234"), reply
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    if outgoing.pending:
                        raw.sendall(outgoing.read())
                    data = raw.recv(65536)
                    assert data, "server closed during the TLS handshake"
                    incoming.write(data)
            tls.write(b"USER " + USER.encode() + b"\r\n")
            raw.sendall(outgoing.read())
            answer = b""
            while not answer.endswith(b"\r\n"):
                try:
                    answer += tls.read(1024)
                except ssl.SSLWantReadError:
                    incoming.write(raw.recv(65536))
            assert answer.startswith(b"331"), answer
