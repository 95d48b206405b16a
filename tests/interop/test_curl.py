"""curl (plain FTP, explicit FTPS, implicit FTPS) against ``python -m gateway``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.interop.conftest import (
    BIG_SIZE,
    MIB,
    BigFile,
    GatewayProcess,
    ServerFactory,
    TlsFiles,
    require_tool,
    run,
    sha256_file,
)


def curl(*args: str, cwd: Path, check: bool = True):  # type: ignore[no-untyped-def]
    return run([require_tool("curl"), "-sS", "--max-time", "100", *args], cwd=cwd, check=check)


def tls_args(tls_files: TlsFiles) -> list[str]:
    return ["--ssl-reqd", "--cacert", str(tls_files.ca)]


def test_list_upload_download_create_dirs_quote_pasv(
    gateway_server: ServerFactory, tmp_path: Path
) -> None:
    server = gateway_server()
    root = server.root
    assert root is not None
    (root / "existing.txt").write_bytes(b"already here\n")
    (root / "dir").mkdir()
    local = tmp_path / "local.txt"
    local.write_bytes(b"uploaded by curl\n" * 1000)

    listing = curl(server.url("/"), cwd=tmp_path).stdout
    names = {line.split()[-1] for line in listing.splitlines()}
    assert names == {"existing.txt", "dir"}, listing
    assert re.search(r"^d\S+ .* dir$", listing, re.M), listing

    curl("-T", str(local), server.url("/dir/up.txt"), cwd=tmp_path)
    assert (root / "dir" / "up.txt").read_bytes() == local.read_bytes()

    out = tmp_path / "down.txt"
    curl("-o", str(out), server.url("/dir/up.txt"), cwd=tmp_path)
    assert out.read_bytes() == local.read_bytes()

    # NLST
    assert curl("--list-only", server.url("/dir/"), cwd=tmp_path).stdout.split() == ["up.txt"]

    # --ftp-create-dirs makes the missing directories (MKD + CWD as it goes)
    curl("--ftp-create-dirs", "-T", str(local), server.url("/new/deeper/deepest/up.txt"), cwd=tmp_path)
    assert (root / "new" / "deeper" / "deepest" / "up.txt").read_bytes() == local.read_bytes()
    # without it the upload into a missing directory fails
    failed = curl("-T", str(local), server.url("/missing/up.txt"), cwd=tmp_path, check=False)
    assert failed.returncode != 0
    assert not (root / "missing").exists()

    # -Q "-DELE file": a command after the transfer (here a listing)
    after = curl("-Q", "-DELE up.txt", server.url("/dir/"), cwd=tmp_path).stdout
    assert "up.txt" in after  # listed before the DELE ran
    assert not (root / "dir" / "up.txt").exists()
    # a pre-transfer quote that fails makes curl fail
    failed = curl("-Q", "DELE nothing-here", server.url("/dir/"), cwd=tmp_path, check=False)
    assert failed.returncode == 21, failed.stderr  # CURLE_QUOTE_ERROR

    # --disable-epsv: PASV instead of EPSV, for a listing and a download
    verbose = curl("--disable-epsv", "-v", "-o", str(out), server.url("/existing.txt"), cwd=tmp_path)
    assert "> PASV" in verbose.stderr and "> EPSV" not in verbose.stderr, verbose.stderr
    assert out.read_bytes() == b"already here\n"
    verbose = curl("--disable-epsv", "-v", server.url("/"), cwd=tmp_path)
    assert "> PASV" in verbose.stderr
    assert "existing.txt" in verbose.stdout
    # default: EPSV
    verbose = curl("-v", server.url("/"), cwd=tmp_path)
    assert "> EPSV" in verbose.stderr

    # download of a missing file: 550 -> curl 78 (remote file not found)
    failed = curl("-o", str(tmp_path / "x"), server.url("/nothing.bin"), cwd=tmp_path, check=False)
    assert failed.returncode == 78, failed.stderr

    # wrong password: curl 67 (login denied)
    bad = server.url("/").replace(f":{server.password}@", ":wrong@")
    failed = curl(bad, cwd=tmp_path, check=False)
    assert failed.returncode == 67, failed.stderr


@pytest.mark.slow
def test_upload_download_resume_100mib(
    gateway_server: ServerFactory, big_file: BigFile, tmp_path: Path
) -> None:
    server = gateway_server()
    assert server.root is not None
    curl("-T", str(big_file.path), server.url("/big.bin"), cwd=tmp_path)
    assert sha256_file(server.root / "big.bin") == big_file.sha256

    out = tmp_path / "big.bin"
    curl("-o", str(out), server.url("/big.bin"), cwd=tmp_path)
    assert out.stat().st_size == BIG_SIZE
    assert sha256_file(out) == big_file.sha256

    # resume: a partial local copy, then -C - continues from its size (REST)
    partial = tmp_path / "partial.bin"
    keep = 93 * MIB + 4321
    with open(big_file.path, "rb") as src, open(partial, "wb") as dst:
        dst.write(src.read(keep))
    verbose = curl("-v", "-C", "-", "-o", str(partial), server.url("/big.bin"), cwd=tmp_path)
    assert f"> REST {keep}" in verbose.stderr, verbose.stderr
    assert partial.stat().st_size == BIG_SIZE
    assert sha256_file(partial) == big_file.sha256


def check_tls_version(stderr: str, version: str) -> None:
    used = re.findall(r"SSL connection using (TLSv1\.\d)", stderr)
    assert used, stderr
    assert set(used) == {version}, used


@pytest.mark.slow
@pytest.mark.parametrize(
    ("version", "option"), [("TLSv1.2", ["--tls-max", "1.2"]), ("TLSv1.3", ["--tlsv1.3"])]
)
def test_tls_upload_download_100mib(
    gateway_server: ServerFactory, tls_files: TlsFiles, big_file: BigFile, tmp_path: Path,
    version: str, option: list[str],
) -> None:
    server = gateway_server(tls=True)
    assert server.root is not None
    args = [*tls_args(tls_files), *option, "-v"]
    up = curl(*args, "-T", str(big_file.path), server.url("/big.bin"), cwd=tmp_path)
    # curl tries AUTH SSL first, then AUTH TLS (both accepted, RFC 4217 section 6)
    assert re.search(r"^> AUTH (SSL|TLS)", up.stderr, re.M) and "> PROT P" in up.stderr, up.stderr
    check_tls_version(up.stderr, version)
    assert sha256_file(server.root / "big.bin") == big_file.sha256

    out = tmp_path / "big.bin"
    down = curl(*args, "-o", str(out), server.url("/big.bin"), cwd=tmp_path)
    check_tls_version(down.stderr, version)
    assert sha256_file(out) == big_file.sha256


def test_tls_small_listing_and_untrusted_ca(
    gateway_server: ServerFactory, tls_files: TlsFiles, tmp_path: Path
) -> None:
    server = gateway_server(tls=True)
    assert server.root is not None
    (server.root / "a.txt").write_bytes(b"a")
    listing = curl(*tls_args(tls_files), server.url("/"), cwd=tmp_path).stdout
    assert listing.split()[-1] == "a.txt"
    # without the CA, curl refuses the certificate (60: peer certificate cannot be authenticated)
    failed = curl("--ssl-reqd", server.url("/"), cwd=tmp_path, check=False)
    assert failed.returncode == 60, failed.stderr


def test_require_tls_refuses_plain_curl(
    gateway_server: ServerFactory, tls_files: TlsFiles, tmp_path: Path
) -> None:
    server = gateway_server(require_tls=True)
    assert server.root is not None
    (server.root / "a.txt").write_bytes(b"secret")
    failed = curl("-v", server.url("/a.txt"), cwd=tmp_path, check=False)
    assert failed.returncode != 0
    assert "< 530" in failed.stderr, failed.stderr
    # with TLS it works
    assert curl(*tls_args(tls_files), server.url("/a.txt"), cwd=tmp_path).stdout == "secret"


def test_implicit_tls_ftps_urls(
    gateway_server: ServerFactory, tls_files: TlsFiles, tmp_path: Path
) -> None:
    server: GatewayProcess = gateway_server(implicit_tls=True)
    assert server.root is not None
    (server.root / "dir").mkdir()
    local = tmp_path / "local.bin"
    local.write_bytes(bytes(range(256)) * 4096)
    ca = ["--cacert", str(tls_files.ca)]

    curl(*ca, "-T", str(local), server.url("/dir/up.bin", "ftps"), cwd=tmp_path)
    assert (server.root / "dir" / "up.bin").read_bytes() == local.read_bytes()
    listing = curl(*ca, "-v", server.url("/dir/", "ftps"), cwd=tmp_path)
    assert listing.stdout.split()[-1] == "up.bin"
    assert "> AUTH" not in listing.stderr  # TLS from the first byte, not AUTH TLS
    out = tmp_path / "down.bin"
    curl(*ca, "-o", str(out), server.url("/dir/up.bin", "ftps"), cwd=tmp_path)
    assert out.read_bytes() == local.read_bytes()
    # a plain ftp:// client gets no greeting it understands
    failed = curl("--max-time", "1", server.url("/"), cwd=tmp_path, check=False)
    assert failed.returncode != 0
