"""Client networks and file rules in the configuration: [server] and [[users.static]]."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from gateway.config import ConfigError, load_settings
from gateway.server.events import ServerEvents
from gateway.service.build import build_servers, build_user_manager, static_user
from gateway.service.reload import apply_reload
from gateway.users.filerules import FileRules

HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


def config_text(tmp_path: Path, server: str = "", user: str = "") -> str:
    return f"""
[server]
{server}

[storage]
root = "{tmp_path / 'files'}"

[[users.static]]
login = "camera1"
password_hash = "{HASH}"
{user}
"""


POLICY = """
allow_from = ["10.20.0.0/16", "2001:db8:20::/48"]
deny_from = ["10.20.6.0/24"]
allow_names = ["*.jpg", "*.mp4"]
deny_names = ["*.exe", "/config/*"]
hide_denied = true
max_file_size = "100MiB"
"""


def test_static_accounts_take_a_storage_policy(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, config_text(tmp_path, user=POLICY)), env={})
    entry = settings.users.static[0]
    assert entry.allow_from == ("10.20.0.0/16", "2001:db8:20::/48")
    assert entry.max_file_size == 100 * 1024 * 1024
    user = static_user(settings, entry)
    assert user.addresses.permits("10.20.1.1") and not user.addresses.permits("10.20.6.1")
    assert user.addresses.permits("2001:db8:20::5") and not user.addresses.permits("192.0.2.1")
    assert user.file_rules == FileRules(
        allow=("*.jpg", "*.mp4"), deny=("*.exe", "/config/*"), hide_denied=True,
        max_file_size=100 * 1024 * 1024,
    )


def test_accounts_without_a_policy_have_none(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, config_text(tmp_path)), env={})
    user = static_user(settings, settings.users.static[0])
    assert not user.addresses.active and not user.file_rules.active


async def test_server_networks_from_the_file_and_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, config_text(tmp_path, server='allow_from = ["10.0.0.0/8", "::1"]'))
    settings = load_settings(path, env={"GATEWAY_SERVER_DENY_FROM": "10.6.6.0/24, ::ffff:10.7.0.0/112"})
    assert settings.allow_from == ("10.0.0.0/8", "::1/128")
    assert settings.deny_from == ("10.6.6.0/24", "10.7.0.0/16")
    manager = build_user_manager(settings)
    [(server, _listener)] = build_servers(settings, manager, ServerEvents())
    rules = server.address_rules
    assert rules.allow == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))
    assert rules.permits("10.1.1.1") and not rules.permits("10.7.1.1")
    assert not rules.permits("192.0.2.1")


@pytest.mark.parametrize(
    ("server", "user", "message"),
    [
        ('allow_from = ["10.0.0.1/8"]', "", r"server\.allow_from: bad network '10\.0\.0\.1/8'.*did you mean 10\.0\.0\.0/8"),
        ('deny_from = "example.com"', "", r"server\.deny_from: bad network 'example\.com'"),
        ("", 'allow_from = ["::1/129"]', r"allow_from: bad network"),
        ("", 'deny_names = ["incoming/*.tmp"]', r"deny_names: bad name pattern .*must start with /"),
        ("", "allow_names = [1]", r"allow_names: expected a list of name patterns"),
        ("", 'max_file_size = "big"', r"max_file_size: expected a size"),
        ("", 'hide_denied = "sometimes"', r"hide_denied: expected true or false"),
    ],
)
def test_bad_values_name_the_line_and_key(tmp_path: Path, server: str, user: str, message: str) -> None:
    path = write(tmp_path, config_text(tmp_path, server=server, user=user))
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(path, env={})
    assert str(path) in str(caught.value) and " line " in str(caught.value)


async def test_reload_changes_the_networks_and_the_accounts_policy(tmp_path: Path) -> None:
    path = write(tmp_path, config_text(tmp_path))
    settings = load_settings(path, env={})
    manager = build_user_manager(settings)
    servers = [server for server, _ in build_servers(settings, manager, ServerEvents())]
    assert not servers[0].address_rules.active
    path.write_text(config_text(tmp_path, server='deny_from = ["192.0.2.0/24"]',
                                user='deny_names = ["*.exe"]'))
    new = apply_reload(settings, lambda: load_settings(path, env={}), servers, manager)
    assert new.deny_from == ("192.0.2.0/24",)
    assert not servers[0].address_rules.permits("192.0.2.9")
    assert manager.users[0].file_rules.deny == ("*.exe",)
