"""lftp (mirror both ways, MLSD on and off, FTPS) against ``python -m gateway``.

lftp is required: when it is missing the test setup installs it
(``scripts/install-test-deps.sh``); when that is impossible these tests fail, they do
not skip.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.interop.conftest import (
    BIG_SIZE,
    BigFile,
    GatewayProcess,
    ServerFactory,
    TlsFiles,
    make_tree,
    require_tool,
    run,
    sha256_file,
    tree_digest,
)

#: Settings for every run: fail fast and loudly instead of lftp's patient retries.
BASE_SETTINGS = [
    "set cmd:fail-exit yes",
    "set net:max-retries 1",
    "set net:timeout 30",
    "set net:reconnect-interval-base 1",
    "set xfer:clobber on",
]


def lftp(server: GatewayProcess, commands: list[str], *, cwd: Path,
         tls: TlsFiles | None = None, mlsd: bool = True, check: bool = True):  # type: ignore[no-untyped-def]
    settings = list(BASE_SETTINGS)
    settings.append(f"set ftp:use-mlsd {'on' if mlsd else 'off'}")
    if tls is None:
        settings.append("set ftp:ssl-allow no")
    else:
        settings += [
            "set ftp:ssl-force on",
            "set ftp:ssl-protect-data yes",
            "set ftp:ssl-protect-list yes",
            f"set ssl:ca-file {tls.ca}",
            "set ssl:verify-certificate yes",
        ]
    script = "; ".join(
        [*settings, f"open -u {server.user},{server.password} -p {server.port} ftp://{server.host}",
         *commands, "bye"]
    )
    # -d: the protocol dialogue goes to stderr, so the tests can see which commands ran
    return run([require_tool("lftp"), "-d", "-c", script], cwd=cwd, check=check)


def sent_commands(stderr: str) -> list[str]:
    return re.findall(r"^---> (\S+)", stderr, re.M)


@pytest.mark.parametrize(
    ("mlsd", "use_tls"),
    [(True, False), (False, False), (True, True)],
    ids=["mlsd-on", "mlsd-off", "mlsd-on-tls"],
)
def test_mirror_up_and_back(
    gateway_server: ServerFactory, tls_files: TlsFiles, tmp_path: Path, mlsd: bool, use_tls: bool
) -> None:
    server = gateway_server(tls=use_tls)
    assert server.root is not None
    source = tmp_path / "source"
    expected = make_tree(source, files=30)
    assert sum(1 for v in expected.values() if v != "dir") == 30
    assert max(rel.count("/") for rel in expected) >= 3  # three levels below the root

    tls = tls_files if use_tls else None
    up = lftp(server, [f"mirror -R --no-perms {source} /tree"], cwd=tmp_path, tls=tls, mlsd=mlsd)
    assert tree_digest(server.root / "tree") == expected

    back = tmp_path / "back"
    down = lftp(server, [f"mirror --no-perms /tree {back}"], cwd=tmp_path, tls=tls, mlsd=mlsd)
    assert tree_digest(back) == expected  # sha256 of every file
    run(["diff", "-r", str(source), str(back)], cwd=tmp_path)  # and what diff -r says
    run(["diff", "-r", str(source), str(server.root / "tree")], cwd=tmp_path)

    commands = sent_commands(up.stderr) + sent_commands(down.stderr)
    if mlsd:
        assert "MLSD" in commands and "LIST" not in commands, commands
    else:
        assert "LIST" in commands and "MLSD" not in commands, commands
    if use_tls:
        assert "AUTH" in commands and "PROT" in commands, commands
    else:
        assert "AUTH" not in commands, commands


@pytest.mark.slow
def test_tls_put_get_100mib(
    gateway_server: ServerFactory, tls_files: TlsFiles, big_file: BigFile, tmp_path: Path
) -> None:
    server = gateway_server(tls=True)
    assert server.root is not None
    local = tmp_path / "back.bin"
    result = lftp(
        server,
        [f"put {big_file.path} -o /big.bin", f"get /big.bin -o {local}", "cls -l /"],
        cwd=tmp_path, tls=tls_files,
    )
    commands = sent_commands(result.stderr)
    assert "AUTH" in commands and "PROT" in commands and "STOR" in commands, commands
    assert re.search(r"^<--- 200 data connections will be protected", result.stderr, re.M)
    assert sha256_file(server.root / "big.bin") == big_file.sha256
    assert local.stat().st_size == BIG_SIZE
    assert sha256_file(local) == big_file.sha256
    assert re.search(rf"\b{BIG_SIZE}\b.*big\.bin", result.stdout), result.stdout


def test_tls_refused_with_an_untrusted_ca(
    gateway_server: ServerFactory, tmp_path: Path
) -> None:
    server = gateway_server(tls=True)
    wrong = tmp_path / "empty-ca.pem"
    import trustme

    trustme.CA().cert_pem.write_to_path(str(wrong))
    result = lftp(
        server, ["set net:max-retries 1", "cls /"], cwd=tmp_path,
        tls=TlsFiles(ca=wrong, cert=wrong, key=wrong), check=False,
    )
    assert result.returncode != 0
    assert "USER" not in sent_commands(result.stderr)  # never sent credentials in clear
