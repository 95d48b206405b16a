"""Configuration loading: file, environment and flags, and every refusal of a bad one."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_settings
from gateway.config import values as v
from gateway.config.locate import line_of

HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


def test_defaults_are_the_embedded_server():
    settings = load_settings(env={})
    assert [(li.host, li.port) for li in settings.listeners] == [("127.0.0.1", 2121)]
    assert settings.users.source == "database"
    assert settings.users.database.url is None  # GATEWAY_DATABASE_URL or the SQLite file
    assert settings.storage.root == "var/ftp"
    assert settings.metrics.listen is None and settings.logging.xferlog is None


def test_a_full_file(tmp_path: Path):
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    path = write(tmp_path, f"""
[server]
shutdown_grace = "2m"
device_quirks = ["allo_ok", "mkd_existing_ok"]

[[listeners]]
host = "0.0.0.0"
port = 21

[[listeners]]
host = "0.0.0.0"
port = 990
tls = "implicit"

[tls]
cert = "{cert}"
require = true

[passive]
ports = "30000-30009"
address = "203.0.113.10"

[storage]
root = "s3://bucket/ftp"

[storage.options]
endpoint_url = "http://minio:9000"
part_size = 16777216

[storage.options."fsspec+gcs://"]
project = "p1"

[limits]
max_connections = 500
read_speed_limit = "10MiB"
idle_timeout = "5m"
login_timeout = 0

[logging]
format = "json"
xferlog = "/var/log/gateway/xferlog"

[metrics]
listen = "127.0.0.1:9121"

[[users.static]]
login = "alice"
password_hash = "{HASH}"
root = "memory:///alice"
permissions = ["/:r", {{ path = "/incoming", writable = true }}]
max_connections = 3
write_speed_limit_per_connection = "1MiB"

[[users.static]]
login = "anonymous"
""")
    s = load_settings(path, env={})
    assert s.shutdown_grace == 120.0
    assert s.device_quirks == ("allo_ok", "mkd_existing_ok")
    assert [(li.port, li.tls) for li in s.listeners] == [(21, "auto"), (990, "implicit")]
    assert s.tls.require and s.tls.cert == cert
    assert s.passive.ports == range(30000, 30010) and s.passive.address == "203.0.113.10"
    assert s.storage.options["part_size"] == 16777216
    assert s.storage.options["fsspec+gcs://"] == {"project": "p1"}
    assert s.limits.read_speed_limit == 10 * 1024 * 1024
    assert s.limits.idle_timeout == 300.0 and s.limits.login_timeout is None
    assert s.logging.format == "json" and s.metrics.listen == ("127.0.0.1", 9121)
    assert s.users.source == "static"
    alice, anonymous = s.users.static
    assert [(p.path, p.readable, p.writable) for p in alice.permissions] == [
        ("/", True, False), ("/incoming", True, True)
    ]
    assert alice.max_connections == 3 and alice.write_speed_limit_per_connection == 1 << 20
    # anonymous gets read-only unless the file says otherwise
    assert anonymous.password_hash is None
    assert [(p.path, p.writable) for p in anonymous.permissions] == [("/", False)]


def test_environment_overrides_file_and_flags_override_both(tmp_path: Path):
    path = write(tmp_path, "[[listeners]]\nhost = \"127.0.0.1\"\nport = 2000\n[logging]\nlevel = \"warning\"\n")
    env = {"GATEWAY_PORT": "2001", "GATEWAY_LOGGING_LEVEL": "debug",
           "GATEWAY_DATABASE_URL": "postgresql://u@db/gw", "GATEWAY_ROOT": "/srv/ftp",
           "GATEWAY_LIMITS_IDLE_TIMEOUT": "90s"}
    s = load_settings(path, env=env)
    assert s.listeners[0].port == 2001 and s.logging.level == "debug"
    assert s.users.database.url == "postgresql://u@db/gw" and s.storage.root == "/srv/ftp"
    assert s.limits.idle_timeout == 90.0
    s = load_settings(path, env=env, flags={"port": "2002", "host": "::1", "root": None})
    assert (s.listeners[0].host, s.listeners[0].port) == ("::1", 2002)
    assert s.storage.root == "/srv/ftp"  # a flag left out changes nothing


def test_config_file_from_environment(tmp_path: Path):
    path = write(tmp_path, "[server]\nwelcome_message = \"hi\"\n")
    assert load_settings(env={"GATEWAY_CONFIG": str(path)}).welcome_message == "hi"


BAD_FILES = [
    ("[limts]\nidle_timeout = 3\n", "line 1", "limts", "unknown table"),
    ("[limits]\n\nidel_timeout = 3\n", "line 3", "limits.idel_timeout", "unknown key"),
    ("[limits]\nidle_timeout = \"soon\"\n", "line 2", "limits.idle_timeout", "duration"),
    ("[limits]\nread_speed_limit = \"fast\"\n", "line 2", "limits.read_speed_limit", "size"),
    ("[limits]\nmax_connections = -4\n", "line 2", "limits.max_connections", "at least 1"),
    ("[[listeners]]\nport = 70000\n", "line 2", "listeners[0].port", "at most 65535"),
    ("[[listeners]]\nport = 21\n[[listeners]]\nport = \"x\"\n", "line 4", "listeners[1].port", "whole number"),
    ("[[listeners]]\nport = 21\ntls = \"explicit\"\n", "line 3", "listeners[0].tls", "cert is not set"),
    ("[[listeners]]\nport = 21\ntls = \"sometimes\"\n", "line 3", "listeners[0].tls", "one of"),
    ("[[listeners]]\nport = 21\nencoding = \"klingon\"\n", "line 3", "listeners[0].encoding", "unknown encoding"),
    ("[[listeners]]\nport = 21\n[[listeners]]\nport = 21\n", "line 4", "listeners[1].port", "listed twice"),
    ("[tls]\nrequire = true\n", "line 2", "tls.require", "cert is not set"),
    ("[tls]\ncert = \"/nonexistent/cert.pem\"\n", "line 2", "tls.cert", "does not exist"),
    ("[passive]\nports = \"3000-2000\"\n", "line 2", "passive.ports", "backwards"),
    ("[passive]\naddress = \"example.com\"\n", "line 2", "passive.address", "IPv4"),
    ("[metrics]\nlisten = \"9121\"\n", "line 2", "metrics.listen", "HOST:PORT"),
    ("[logging]\nformat = \"xml\"\n", "line 2", "logging.format", "text, json"),
    ("[server]\ndevice_quirks = [\"allo_okay\"]\n", "line 2", "server.device_quirks", "unknown device quirks"),
    ("[users]\nsource = \"static\"\n", "line 2", "users.source", "no [[users.static]]"),
    ("[[users.static]]\nlogin = \"bob\"\n", "line 1", "users.static[0]", "needs password_hash"),
    ("[[users.static]]\nlogin = \"bob\"\npassword_hash = \"hunter2\"\n", "line 3",
     "users.static[0].password_hash", "never a clear password"),
    (f"[[users.static]]\nlogin = \"bob\"\npassword_hash = \"{HASH}\"\n[[users.static]]\nlogin = \"bob\"\n"
     f"password_hash = \"{HASH}\"\n", "line 5", "users.static[1].login", "duplicate login"),
    (f"[[users.static]]\nlogin = \"bob\"\npassword_hash = \"{HASH}\"\nhome = \"in\"\n", "line 4",
     "users.static[0].home", "absolute"),
    (f"[[users.static]]\nlogin = \"bob\"\npassword_hash = \"{HASH}\"\npermissions = [\"/x:rx\"]\n",
     "line 4", "users.static[0].permissions[0]", "PATH:rw"),
    (f"[[users.static]]\nlogin = \"bob\"\npassword_hash = \"{HASH}\"\npermissions = [\"rel:r\"]\n",
     "line 4", "users.static[0].permissions[0]", "absolute"),
    (f"[[users.static]]\nlogin = \"bob\"\npassword_hash = \"{HASH}\"\nquota = 5\n", "line 4",
     "users.static[0].quota", "unknown key"),
    ("[users.database]\ncache_ttl = true\n", "line 2", "users.database.cache_ttl", "duration"),
    ("[users]\nban_after = -1\n", "line 2", "users.ban_after", "at least 0"),
    ("[users.database]\nheartbeat_interval = 30\nstale_after = 20\n", "line 3", "users.database.stale_after", "longer than"),
    ("[storage]\noptions = 5\n", "line 2", "storage.options", "table"),
]


@pytest.mark.parametrize(("text", "line", "key", "expected"), BAD_FILES)
def test_bad_file_is_refused_naming_line_key_and_expectation(tmp_path: Path, text, line, key, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    message = str(caught.value)
    assert f"{path} {line}" in message, message
    assert key in message, message
    assert expected in message, message


def test_invalid_toml_names_the_line(tmp_path: Path):
    path = write(tmp_path, "[limits]\nidle_timeout = = 3\n")
    with pytest.raises(ConfigError, match=r"not valid TOML.*line 2"):
        load_settings(path, env={})


def test_missing_file_is_named(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", env={})


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError, match=r"environment variable GATEWAY_PORT \(listeners\[0\]\.port\).*whole number"):
        load_settings(env={"GATEWAY_PORT": "ftp"})
    with pytest.raises(ConfigError, match=r"GATEWAY_LIMITS_IDLE_TIMEOUT.*duration"):
        load_settings(env={"GATEWAY_LIMITS_IDLE_TIMEOUT": "forever"})


def test_bad_flag_value_names_the_flag():
    with pytest.raises(ConfigError, match=r"--port \(listeners\[0\]\.port\).*at most 65535"):
        load_settings(env={}, flags={"port": "99999"})


@pytest.mark.parametrize(("text", "seconds"), [(30, 30.0), ("30", 30.0), ("30s", 30.0), ("5m", 300.0),
                                               ("1h", 3600.0), ("250ms", 0.25), (1.5, 1.5)])
def test_durations(text, seconds):
    assert v.to_duration(text) == seconds


@pytest.mark.parametrize(("text", "size"), [(1024, 1024), ("8MiB", 8 << 20), ("512KiB", 512 << 10),
                                            ("10MB", 10_000_000), ("1GiB", 1 << 30), ("100", 100)])
def test_sizes(text, size):
    assert v.to_size(text) == size


def test_line_of_follows_tables_and_arrays():
    text = "[a]\nx = 1\n[[l]]\ny = 2\n[[l]]\n# note\ny = 3\n[b.c]\nz = 4\n"
    assert line_of(text, ("a", "x")) == 2
    assert line_of(text, ("l", 0, "y")) == 4
    assert line_of(text, ("l", 1, "y")) == 7
    assert line_of(text, ("b", "c", "z")) == 9
    assert line_of(text, ("b", "c")) == 8
    assert line_of(text, ("nowhere",)) is None


@pytest.mark.parametrize(("table", "key"), [("tls", "cert"), ("logging", "xferlog"), ("storage", "root"),
                                            ("users.database", "url")])
def test_nul_bytes_are_refused(tmp_path: Path, table: str, key: str):
    path = write(tmp_path, f'[{table}]\n{key} = "a\\u0000b"\n')
    with pytest.raises(ConfigError, match="NUL byte is not allowed"):
        load_settings(path, env={})


def test_a_path_with_an_unknown_users_home_is_refused_clearly() -> None:
    """``~name`` of an account that does not exist (found by the fuzz test)."""
    with pytest.raises(ConfigError, match="cannot expand"):
        load_settings(env={"GATEWAY_LOGGING_FILE": "~no-such-account-here"})
