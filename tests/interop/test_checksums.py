"""Checksums as independent clients ask for them: curl ``-Q`` and lftp ``quote``
against ``python -m gateway``, compared with hashlib/zlib over what curl uploaded."""

from __future__ import annotations

import hashlib
import os
import re
import zlib
from pathlib import Path

from tests.interop.conftest import ServerFactory, require_tool, run
from tests.interop.test_lftp import lftp


def test_curl_quote_hash_and_xcrc_after_upload(gateway_server: ServerFactory, tmp_path: Path) -> None:
    server = gateway_server()
    local = tmp_path / "video.bin"
    data = os.urandom(3 * 1024 * 1024 + 5)
    local.write_bytes(data)
    curl = require_tool("curl")
    run([curl, "-sS", "-T", str(local), server.url("/video.bin")], cwd=tmp_path)
    # the quoted commands run before a listing; -v shows the server's replies
    done = run([curl, "-sS", "-v", "-l", "-Q", "OPTS HASH SHA-256", "-Q", "HASH video.bin",
                "-Q", "XCRC video.bin", "-Q", "XMD5 video.bin 0 1000", server.url("/")], cwd=tmp_path)
    replies = re.findall(r"^< (\d{3}) (.*?)\r?$", done.stderr, re.M)
    assert ("200", "SHA-256") in replies, done.stderr
    size = len(data)
    sha256 = hashlib.sha256(data).hexdigest()
    assert ("213", f"SHA-256 0-{size - 1} {sha256} video.bin") in replies, done.stderr
    assert ("250", f"{zlib.crc32(data):08X}") in replies, done.stderr
    assert ("250", hashlib.md5(data[:1000]).hexdigest().upper()) in replies, done.stderr
    # a refused quote fails curl: HASH of what is not there
    failed = run([curl, "-sS", "-l", "-Q", "HASH nothing.bin", server.url("/")], cwd=tmp_path,
                 check=False)
    assert failed.returncode == 21, failed.stderr  # CURLE_QUOTE_ERROR


def test_lftp_quote_hash(gateway_server: ServerFactory, tmp_path: Path) -> None:
    server = gateway_server()
    root = server.root
    assert root is not None
    data = b"made outside the server\n" * 1000
    (root / "outside.txt").write_bytes(data)
    done = lftp(server, ["quote OPTS HASH MD5", "quote HASH outside.txt", "quote XSHA1 outside.txt"],
                cwd=tmp_path)
    out = done.stdout + done.stderr
    assert f"MD5 0-{len(data) - 1} {hashlib.md5(data).hexdigest()} outside.txt" in out, out
    assert hashlib.sha1(data).hexdigest().upper() in out, out
