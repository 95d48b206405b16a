"""``[[listeners]] proxy_protocol`` / ``proxy_trusted``: loaded, checked, built."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from gateway.config import ConfigError, load_settings
from gateway.server.events import ServerEvents
from gateway.service.build import build_servers, build_user_manager

HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


def load(tmp_path: Path, listener: str, second: str = "") -> object:
    path = tmp_path / "gateway.toml"
    path.write_text(f"""
[[listeners]]
host = "127.0.0.1"
port = 0
{listener}

{second}

[storage]
root = "{tmp_path / 'files'}"

[[users.static]]
login = "camera1"
password_hash = "{HASH}"
""")
    return load_settings(path, env={})


def test_listeners_take_the_proxy_protocol(tmp_path: Path) -> None:
    settings = load(tmp_path, 'proxy_protocol = "v2"\nproxy_trusted = ["10.0.0.0/8", "2001:db8::5"]',
                    '[[listeners]]\nhost = "127.0.0.1"\nport = 0\ntls = "none"')
    first, second = settings.listeners  # type: ignore[attr-defined]
    assert first.proxy_protocol == "v2"
    assert first.proxy_trusted == ("10.0.0.0/8", "2001:db8::5/128")
    assert second.proxy_protocol == "off" and second.proxy_trusted == ()
    servers = build_servers(settings, build_user_manager(settings), ServerEvents())  # type: ignore[arg-type]
    policy = servers[0][0].proxy_policy
    assert policy is not None and policy.versions == frozenset({2})
    assert policy.trusted == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::5/128"))
    assert policy.trusts("10.1.2.3") and policy.trusts("::ffff:10.1.2.3") and not policy.trusts("192.0.2.1")
    assert servers[1][0].proxy_policy is None


@pytest.mark.parametrize("listener, message", [
    ('proxy_protocol = "v2"', r"listeners\[0\]\.proxy_protocol: is \"v2\" but proxy_trusted is not set"),
    ('proxy_trusted = ["10.0.0.0/8"]', r"listeners\[0\]\.proxy_trusted: is set but proxy_protocol is off"),
    ('proxy_protocol = "v3"\nproxy_trusted = ["10.0.0.0/8"]', r"expected one of off, v1, v2, any"),
    ('proxy_protocol = true\nproxy_trusted = ["10.0.0.0/8"]', r"expected one of off, v1, v2, any"),
    ('proxy_protocol = "any"\nproxy_trusted = ["10.0.0.1/8"]', r"host bits are set below /8 \(did you mean 10\.0\.0\.0/8\?\)"),
    ('proxy_protocol = "any"\nproxy_trusted = ["balancer.internal"]', r"bad network 'balancer\.internal'"),
])
def test_bad_proxy_settings_are_refused_with_the_line(tmp_path: Path, listener: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load(tmp_path, listener)
    assert "gateway.toml line" in str(caught.value)
