"""``python -m gateway`` options seen from a client: --memory, --require-tls,
--implicit-tls (ftplib side; curl's is in test_curl), --data-ports, --passive-address."""

from __future__ import annotations

import ftplib
import io
import re
import socket
import ssl

import pytest

from tests.interop.conftest import HOST, PASSWORD, USER, ServerFactory, TlsFiles, free_port

TIMEOUT = 30


def test_memory_serves_a_working_tree(gateway_server: ServerFactory) -> None:
    server = gateway_server(memory=True)
    assert server.root is not None  # the process's cwd; nothing may be written there
    ftp = ftplib.FTP(timeout=TIMEOUT)
    ftp.connect(HOST, server.port)
    ftp.login(USER, PASSWORD)
    try:
        assert ftp.pwd() == "/"
        ftp.mkd("docs")
        ftp.mkd("docs/deeper")
        payload = bytes(range(256)) * 4096 + b"tail"
        ftp.storbinary("STOR docs/deeper/data.bin", io.BytesIO(payload))
        ftp.storlines("STOR docs/notes.txt", io.BytesIO(b"line one\nline two\n"))
        assert ftp.size("docs/deeper/data.bin") == len(payload)
        facts = dict(ftp.mlsd("docs"))
        assert facts["deeper"]["type"] == "dir" and facts["notes.txt"]["type"] == "file"
        lines: list[str] = []
        ftp.retrlines("LIST docs/deeper", lines.append)
        assert lines[0].split()[-1] == "data.bin"
        received = io.BytesIO()
        ftp.retrbinary("RETR docs/deeper/data.bin", received.write)
        assert received.getvalue() == payload
        tail = io.BytesIO()
        ftp.retrbinary("RETR docs/deeper/data.bin", tail.write, rest=len(payload) - 4)
        assert tail.getvalue() == b"tail"
        ftp.rename("docs/notes.txt", "notes.txt")
        assert sorted(ftp.nlst()) == ["docs", "notes.txt"]
        ftp.delete("docs/deeper/data.bin")
        ftp.rmd("docs/deeper")
        with pytest.raises(ftplib.error_perm, match="^550"):
            ftp.cwd("docs/deeper")
    finally:
        ftp.quit()
    # a second connection sees the same memory tree (one tree per server process)
    again = ftplib.FTP(timeout=TIMEOUT)
    again.connect(HOST, server.port)
    again.login(USER, PASSWORD)
    assert sorted(again.nlst()) == ["docs", "notes.txt"]
    again.quit()
    assert [p.name for p in server.root.iterdir()] == []


def test_require_tls_refuses_plain_login(gateway_server: ServerFactory, tls_files: TlsFiles) -> None:
    server = gateway_server(require_tls=True)
    plain = ftplib.FTP(timeout=TIMEOUT)
    plain.connect(HOST, server.port)
    with pytest.raises(ftplib.error_perm, match="^530"):
        plain.login(USER, PASSWORD)
    with pytest.raises(ftplib.error_perm, match="^530"):
        plain.sendcmd("PASS " + PASSWORD)
    plain.quit()

    secure = ftplib.FTP_TLS(context=tls_files.client_context(), timeout=TIMEOUT)
    secure.connect(HOST, server.port)
    secure.login(USER, PASSWORD)
    secure.prot_p()  # PBSZ 0 + PROT P
    with pytest.raises(ftplib.error_perm, match="^534"):
        secure.prot_c()  # clear data connections are refused too
    assert secure.nlst() == []
    secure.quit()


class ImplicitFTP_TLS(ftplib.FTP_TLS):
    """ftplib has no implicit FTPS: wrap the control socket before the greeting."""

    def connect(self, host: str = "", port: int = 0, timeout: float = -999,  # type: ignore[override]
                source_address=None) -> str:  # type: ignore[no-untyped-def]
        self.host, self.port = host, port
        self.timeout = TIMEOUT
        raw = socket.create_connection((host, port), TIMEOUT)
        self.sock = self.context.wrap_socket(raw, server_hostname=host)
        self.af = self.sock.family
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome


def test_implicit_tls_with_ftplib(gateway_server: ServerFactory, tls_files: TlsFiles) -> None:
    server = gateway_server(implicit_tls=True)
    assert server.root is not None
    ftp = ImplicitFTP_TLS(context=tls_files.client_context())
    assert ftp.connect(HOST, server.port).startswith("220")
    assert isinstance(ftp.sock, ssl.SSLSocket)
    ftp.login(USER, PASSWORD, secure=False)  # already secure: no AUTH TLS
    ftp.prot_p()
    ftp.storbinary("STOR x.bin", io.BytesIO(b"implicit" * 1000))
    assert (server.root / "x.bin").read_bytes() == b"implicit" * 1000
    ftp.quit()


def test_data_ports_and_passive_address(gateway_server: ServerFactory) -> None:
    low = free_port()
    ports = range(low, low + 1)  # one port: every transfer reuses it
    server = gateway_server(extra_args=("--data-ports", f"{low}-{low}",
                                        "--passive-address", "127.0.0.1"))
    assert server.root is not None
    ftp = ftplib.FTP(timeout=TIMEOUT)
    ftp.connect(HOST, server.port)
    ftp.login(USER, PASSWORD)
    for i in range(3):
        ftp.storbinary(f"STOR f{i}", io.BytesIO(b"%d" % i))
        reply = ftp.sendcmd("PASV")
        numbers = [int(n) for n in re.findall(r"\d+", reply.split("(", 1)[1])]
        assert numbers[:4] == [127, 0, 0, 1]
        assert numbers[4] * 256 + numbers[5] in ports
    assert sorted(ftp.nlst()) == ["f0", "f1", "f2"]
    ftp.quit()
