"""``gateway serve`` end to end: the README's quick start, configuration files,
graceful shutdown with a transfer in flight, the transfer log, metrics, --check."""

from __future__ import annotations

import ftplib
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import trustme

from .conftest import HOST, METRICS_PATTERN, base_env, run_cli

MIB = 1024 * 1024
REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 30


def hash_password(tmp_path: Path, password: str) -> str:
    done = run_cli("hash-password", "--password-stdin", cwd=tmp_path, stdin=password + "\n")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def login(port: int, user: str, password: str) -> ftplib.FTP:
    ftp = ftplib.FTP(timeout=TIMEOUT)
    ftp.connect(HOST, port)
    ftp.login(user, password)
    return ftp


def retr(ftp: ftplib.FTP, name: str) -> bytes:
    chunks: list[bytes] = []
    ftp.retrbinary("RETR " + name, chunks.append)
    return b"".join(chunks)


def static_config(tmp_path: Path, password: str = "pw", extra: str = "", user_extra: str = "") -> Path:
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
[[listeners]]
host = "{HOST}"
port = 0

[storage]
root = "{tmp_path / 'files'}"

[[users.static]]
login = "alice"
password_hash = "{hash_password(tmp_path, password)}"
{user_extra}
{extra}
""")
    return config


def test_readme_quick_start(tmp_path: Path, start_gateway):
    """The README's first command (scripts/serve.sh, no configuration): SQLite accounts
    created on first start, and a hint for the first account that runs as printed, from
    another directory with the virtualenv not on PATH.  The README's own command (no
    --root) adds a second account under the storage root.  Then ftplib logs in and
    uploads as both.  The script runs from a copy of the tree sharing this virtualenv."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "serve.sh", tmp_path / "scripts" / "serve.sh")
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    serve_sh = ["bash", str(tmp_path / "scripts" / "serve.sh"), "--port", "0"]

    first = start_gateway(argv=serve_sh)
    hint = re.search(r"no accounts yet in .*; add one with:\n +(\S.*)\n", first.output)
    assert hint, first.output
    first.signal()
    assert first.wait_exit() == 0
    database = tmp_path / "gateway.sqlite3"
    assert database.is_file()
    printed = hint.group(1)
    assert shlex.split(printed) == [
        str(tmp_path / ".venv" / "bin" / "gateway"), "users", "add", "alice",
        "--root", str(tmp_path / "var" / "ftp" / "alice"),
        "--database-url", f"sqlite+aiosqlite:///{database}",
    ]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    without_venv = base_env(PATH="/usr/local/bin:/usr/bin:/bin")
    added = subprocess.run(
        ["bash", "-c", printed + " --password-stdin"],
        cwd=elsewhere, input="s3cret\n", capture_output=True, text=True, env=without_venv,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    assert list(elsewhere.iterdir()) == []  # it used the server's database, made nothing here

    # the README's command, run from the checkout as it says, for a second login
    readme = (REPO / "README.md").read_text()
    documented = re.search(r"^(\.venv/bin/gateway users add alice)\b[^\n]*$", readme, re.MULTILINE)
    assert documented, "README.md lost its quick-start command"
    added = subprocess.run(
        ["bash", "-c", documented.group(1).replace("alice", "bob") + " --password-stdin"],
        cwd=tmp_path, input="b0b\n", capture_output=True, text=True, env=without_venv,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    assert f"files in {tmp_path / 'var' / 'ftp' / 'bob'}" in added.stdout

    server = start_gateway(argv=serve_sh)
    assert "no accounts yet" not in server.output
    data = os.urandom(300_000)
    for user, password in (("alice", "s3cret"), ("bob", "b0b")):
        ftp = login(server.port, user, password)
        try:
            ftp.storbinary("STOR hello.bin", io.BytesIO(data))
            assert retr(ftp, "hello.bin") == data
        finally:
            ftp.quit()
        assert (tmp_path / "var" / "ftp" / user / "hello.bin").read_bytes() == data
    with pytest.raises(ftplib.error_perm, match="530"):
        login(server.port, "alice", "wrong")


def test_graceful_shutdown_lets_the_transfer_finish(tmp_path: Path, start_gateway):
    xferlog = tmp_path / "log" / "xferlog"
    config = static_config(tmp_path, extra=f"""
[server]
shutdown_grace = 60

[logging]
xferlog = "{xferlog}"
""")
    server = start_gateway("-c", str(config))
    data = os.urandom(8 * MIB)
    idle = login(server.port, "alice", "pw")
    busy = login(server.port, "alice", "pw")
    busy.voidcmd("TYPE I")
    conn = busy.transfercmd("STOR big.bin")
    conn.sendall(data[: 4 * MIB])

    server.signal()
    server.wait_for("shutting down: 2 session\\(s\\), 1 transfer\\(s\\) running, grace 60 s")
    # no new connections once stopping
    with pytest.raises(OSError):
        socket.create_connection((HOST, server.port), timeout=5).close()
    # a session with no transfer is told at once
    assert idle.getline().startswith("421")
    # the upload in flight goes on and lands whole
    conn.sendall(data[4 * MIB :])
    conn.close()
    assert busy.voidresp().startswith("226")
    assert busy.getline().startswith("421")
    assert server.wait_exit() == 0
    stored = tmp_path / "files" / "alice" / "big.bin"
    assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(data).digest()
    lines = xferlog.read_text().splitlines()
    assert len(lines) == 1
    fields = lines[0].split()
    # ctime (5 fields), seconds, host, size, name, type, flag, direction, mode, user, service, auth, id, status
    assert fields[6:9] == [HOST, str(len(data)), "/big.bin"]
    assert fields[9:18] == ["b", "_", "i", "r", "alice", "ftp", "0", "*", "c"]
    # and the upload's checksum, computed as it streamed
    assert fields[18:] == ["sha256:" + hashlib.sha256(data).hexdigest()]


def test_grace_period_over_rolls_the_upload_back(tmp_path: Path, start_gateway):
    config = static_config(tmp_path, extra="[server]\nshutdown_grace = 1\n")
    server = start_gateway("-c", str(config))
    ftp = login(server.port, "alice", "pw")
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("STOR cut.bin")
    conn.sendall(os.urandom(MIB))
    server.signal()
    server.wait_for("grace period over")
    assert server.wait_exit() == 0
    conn.close()
    folder = tmp_path / "files" / "alice"
    assert sorted(p.name for p in folder.iterdir()) == []  # no file, no partial temp file


def test_metrics_and_json_logs(tmp_path: Path, start_gateway):
    config = static_config(tmp_path, extra="[metrics]\nlisten = \"127.0.0.1:0\"\n")
    server = start_gateway("-c", str(config), "--log-format", "json", "--log-level", "debug")
    metrics_port = int(server.wait_for(METRICS_PATTERN).group(2))
    data = os.urandom(123_456)
    ftp = login(server.port, "alice", "pw")
    ftp.storbinary("STOR m.bin", io.BytesIO(data))
    assert retr(ftp, "m.bin") == data
    ftp.quit()
    refused = ftplib.FTP(timeout=TIMEOUT)
    refused.connect(HOST, server.port)
    with pytest.raises(ftplib.error_perm):
        refused.login("alice", "not-the-password")
    refused.close()
    server.wait_for(r'"message": "closed"', count=2)  # both sessions are over

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
            return str(response.read().decode())

    # the "closed" line is logged just before the open-sessions gauge is lowered
    deadline = time.monotonic() + 10
    text = scrape()
    while re.search(r"^gateway_sessions_open 0\.0$", text, re.MULTILINE) is None:
        assert time.monotonic() < deadline, f"sessions still open:\n{text}"
        text = scrape()

    def value(name: str) -> float:
        match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
        assert match, f"{name} not in metrics:\n{text}"
        return float(match.group(1))

    assert value('gateway_logins_total{result="ok"}') == 1
    assert value('gateway_logins_total{result="failed"}') == 1
    assert value('gateway_transfer_bytes_total{backend="local",direction="in"}') == len(data)
    assert value('gateway_transfer_bytes_total{backend="local",direction="out"}') == len(data)
    assert value('gateway_transfer_files_total{backend="local",direction="in",status="complete"}') == 1
    assert value("gateway_sessions_total") == 2
    assert value("gateway_sessions_open") == 0
    assert "gateway_s3_request_errors" in text

    server.signal()
    assert server.wait_exit() == 0
    records = [json.loads(line) for line in server.lines if line.startswith("{")]
    assert records, server.output
    assert any(r.get("session") and r["message"].startswith("STOR m.bin") for r in records)
    assert any("transfer" in r and r["transfer"]["bytes"] == len(data) for r in records)
    assert "not-the-password" not in server.output  # PASS is never logged
    assert any(r["message"] == "PASS ****" for r in records)


def test_two_listeners_plain_and_implicit_tls(tmp_path: Path, start_gateway):
    ca = trustme.CA()
    cert = ca.issue_cert(HOST)
    cert_file, ca_file = tmp_path / "cert.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    ca.cert_pem.write_to_path(str(ca_file))
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
[[listeners]]
host = "{HOST}"
port = 0
tls = "none"

[[listeners]]
host = "{HOST}"
port = 0
tls = "implicit"

[tls]
cert = "{cert_file}"

[storage]
root = "{tmp_path / 'files'}"

[[users.static]]
login = "alice"
password_hash = "{hash_password(tmp_path, 'pw')}"
""")
    server = start_gateway("-c", str(config), listeners=2)
    assert "(plain)" in server.output and "(implicit TLS)" in server.output
    plain, implicit = server.ports
    ftp = login(plain, "alice", "pw")
    ftp.storbinary("STOR t.txt", io.BytesIO(b"over tls"))
    ftp.quit()
    done = subprocess.run(
        ["curl", "--silent", "--show-error", "--max-time", "30", "--cacert", str(ca_file),
         "--ssl-reqd", f"ftps://alice:pw@{HOST}:{implicit}/t.txt"],
        capture_output=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"over tls"


def test_bad_configuration_is_refused_at_start(tmp_path: Path):
    config = tmp_path / "gateway.toml"
    config.write_text("[limits]\nidle_timeout = \"a while\"\n")
    done = run_cli("serve", "-c", str(config), cwd=tmp_path)
    assert done.returncode == 1
    assert f"{config} line 2: limits.idle_timeout: expected a duration" in done.stderr


def test_check_reports_each_part(tmp_path: Path):
    config = static_config(tmp_path)
    good = run_cli("serve", "-c", str(config), "--check", cwd=tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "ok    accounts: 1 static user(s)" in good.stdout
    assert re.search(r"ok    listen 127\.0\.0\.1:0", good.stdout)

    busy = socket.socket()
    busy.bind((HOST, 0))
    busy.listen()
    try:
        port = str(busy.getsockname()[1])
        bad = run_cli("serve", "--check", "--port", port, "--host", HOST,
                      "--database-url", "postgresql://nobody:x@127.0.0.1:1/none", cwd=tmp_path)
    finally:
        busy.close()
    assert bad.returncode == 1
    assert f"FAIL  listen {HOST}:{port}" in bad.stdout
    assert "FAIL  accounts database: postgresql+asyncpg://nobody:***@127.0.0.1:1/none" in bad.stdout


def test_check_reaches_each_folder(tmp_path: Path, s3_service):
    """Each folder's storage is asked (a listing: an object store answers "exists"
    for a prefix without a request); one that does not answer fails, named by its root."""
    config = static_config(tmp_path)
    options = s3_service.options(max_attempts=1)
    inline = ", ".join(f"{key} = {json.dumps(value)}" for key, value in options.items())
    offline = dict(options, endpoint_url="http://127.0.0.1:1")
    inline_offline = ", ".join(f"{key} = {json.dumps(value)}" for key, value in offline.items())
    config.write_text(config.read_text() + f"""
[[folders]]
name = "online"
root = "s3://{s3_service.bucket}/check"
options = {{ {inline} }}

[[folders]]
name = "offline"
root = "s3://{s3_service.bucket}/elsewhere"
options = {{ {inline_offline} }}
""")
    done = run_cli("serve", "-c", str(config), "--check", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"ok    folder storage s3://{s3_service.bucket}/check: reachable" in done.stdout
    assert f"FAIL  folder storage s3://{s3_service.bucket}/elsewhere" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_check_covers_the_event_outbox(tmp_path: Path):
    """The embedded outbox is checked without being made; one on a database that does
    not answer fails the check."""
    config = static_config(tmp_path)
    action = '\n[[events.actions]]\nkind = "webhook"\nurl = "http://127.0.0.1:9/hook"\n'
    config.write_text(config.read_text() + action)
    good = run_cli("serve", "-c", str(config), "--check", cwd=tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "ok    [events] outbox sqlite+aiosqlite:///var/events.sqlite3: reachable" in good.stdout
    assert not (tmp_path / "var" / "events.sqlite3").exists()

    config.write_text(config.read_text().replace(
        "[[events.actions]]", '[events]\ndatabase_url = "postgresql://nobody:x@127.0.0.1:1/none"\n\n[[events.actions]]'))
    bad = run_cli("serve", "-c", str(config), "--check", cwd=tmp_path)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "FAIL  [events] outbox postgresql+asyncpg://nobody:***@127.0.0.1:1/none" in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr


def test_check_of_the_embedded_default(tmp_path: Path):
    done = run_cli("serve", "--check", "--port", "0", cwd=tmp_path, env=base_env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "accounts database: sqlite+aiosqlite:///gateway.sqlite3 (0 account(s), schema current)" in done.stdout


def test_static_accounts_do_not_tell_which_logins_exist(tmp_path: Path, start_gateway):
    server = start_gateway("-c", str(static_config(tmp_path, extra="[users]\nfailure_delay = 0\n")))
    replies = []
    for user, password in (("nobody", "pw"), ("alice", "wrong")):
        ftp = ftplib.FTP(timeout=TIMEOUT)
        ftp.connect(HOST, server.port)
        assert ftp.sendcmd(f"USER {user}").startswith("331")
        with pytest.raises(ftplib.error_perm) as refused:
            ftp.sendcmd(f"PASS {password}")
        replies.append(str(refused.value))
        ftp.close()
    assert replies[0] == replies[1]
    assert login(server.port, "alice", "pw").quit().startswith("221")


def test_unwritable_transfer_log_is_refused_clearly(tmp_path: Path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the log directory should be")
    config = static_config(tmp_path, extra=f'[logging]\nxferlog = "{blocker / "xferlog"}"\n')
    started = run_cli("serve", "-c", str(config), cwd=tmp_path)
    assert started.returncode == 1
    assert "[logging] xferlog: cannot write" in started.stderr
    assert "Traceback" not in started.stderr
    checked = run_cli("serve", "-c", str(config), "--check", cwd=tmp_path)
    assert checked.returncode == 1
    assert f"FAIL  [logging] xferlog {blocker / 'xferlog'}: cannot write" in checked.stdout


def test_listener_encoding_for_old_devices(tmp_path: Path, start_gateway):
    """A cp1251 listener: a device's Cyrillic names land as real names on disk and
    come back byte for byte."""
    config = static_config(tmp_path)
    text = config.read_text().replace('port = 0\n', 'port = 0\nencoding = "cp1251"\n', 1)
    config.write_text(text)
    server = start_gateway("-c", str(config))
    name = "снимок 01.jpg"
    data = os.urandom(50_000)
    ftp = ftplib.FTP(timeout=TIMEOUT, encoding="cp1251")
    ftp.connect(HOST, server.port)
    ftp.login("alice", "pw")
    ftp.storbinary(f"STOR {name}", io.BytesIO(data))
    assert ftp.nlst() == [name]
    assert retr(ftp, name) == data
    ftp.quit()
    assert (tmp_path / "files" / "alice" / name).read_bytes() == data


def test_sighup_reloads_the_certificate_and_accounts(tmp_path: Path, start_gateway):
    import signal
    import ssl

    ca = trustme.CA()
    cert_file = tmp_path / "cert.pem"
    first_cert = ca.issue_cert(HOST)
    first_cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    def config_text(users: str) -> str:
        return f"""
[[listeners]]
host = "{HOST}"
port = 0

[tls]
cert = "{cert_file}"

[storage]
root = "{tmp_path / 'files'}"
{users}
"""

    alice = f'[[users.static]]\nlogin = "alice"\npassword_hash = "{hash_password(tmp_path, "pw")}"\n'
    bob = f'[[users.static]]\nlogin = "bob"\npassword_hash = "{hash_password(tmp_path, "pw2")}"\n'
    config = tmp_path / "gateway.toml"
    config.write_text(config_text(alice))
    server = start_gateway("-c", str(config))

    def tls_login(user: str, password: str) -> tuple[ftplib.FTP_TLS, bytes]:
        ftp = ftplib.FTP_TLS(context=client_context, timeout=TIMEOUT)
        ftp.connect(HOST, server.port)
        ftp.login(user, password)  # AUTH TLS first
        return ftp, ftp.sock.getpeercert(binary_form=True)

    def der(cert: trustme.LeafCert) -> bytes:
        return ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())

    staying, served = tls_login("alice", "pw")
    assert served == der(first_cert)
    with pytest.raises(ftplib.error_perm):
        tls_login("bob", "pw2")

    second_cert = ca.issue_cert(HOST)  # the renewed certificate
    second_cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    config.write_text(config_text(alice + bob))
    server.signal(signal.SIGHUP)
    server.wait_for("configuration reloaded")
    ftp, served = tls_login("bob", "pw2")
    assert served == der(second_cert)
    ftp.quit()
    assert staying.voidcmd("NOOP").startswith("200")  # sessions in progress go on

    config.write_text("[limits]\nidle_timeout = \"never\"\n")  # a broken edit
    server.signal(signal.SIGHUP)
    server.wait_for("reload refused, the running configuration stays")
    ftp, _ = tls_login("bob", "pw2")
    ftp.quit()
    staying.quit()


def test_run_as_gives_up_root_after_binding(tmp_path: Path, start_gateway):
    """Started as root (to bind port 21), serving as an unprivileged account: the
    process's ids change and uploads belong to that account.  Not started as root,
    the same setting stops the start with a clear message."""
    import pwd
    import tempfile

    public = Path(tempfile.mkdtemp(prefix="gateway-run-as-"))
    public.chmod(0o755)  # the unprivileged account must reach the storage root
    try:
        config = static_config(tmp_path, extra='[server]\nrun_as = "nobody"\n')
        config.write_text(config.read_text().replace(str(tmp_path / "files"), str(public / "files")))
        nobody = pwd.getpwnam("nobody")
        if os.geteuid() != 0:
            refused = run_cli("serve", "-c", str(config), cwd=tmp_path)
            assert refused.returncode == 1 and "run_as: cannot switch to 'nobody'" in refused.stderr
            return
        server = start_gateway("-c", str(config))
        server.wait_for("running as nobody")
        status = Path(f"/proc/{server.popen.pid}/status").read_text()
        uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
        assert uids == [str(nobody.pw_uid)] * 4
        ftp = login(server.port, "alice", "pw")
        ftp.storbinary("STOR owned.bin", io.BytesIO(b"by nobody"))
        ftp.quit()
        stored = public / "files" / "alice" / "owned.bin"
        assert stored.read_bytes() == b"by nobody" and stored.stat().st_uid == nobody.pw_uid
    finally:
        shutil.rmtree(public, ignore_errors=True)


def test_run_as_names_an_unknown_account(tmp_path: Path):
    config = tmp_path / "gateway.toml"
    config.write_text('[server]\nrun_as = "no-such-account-here"\n')
    done = run_cli("serve", "-c", str(config), cwd=tmp_path)
    assert done.returncode == 1
    assert "line 2: server.run_as: no system user 'no-such-account-here'" in done.stderr
