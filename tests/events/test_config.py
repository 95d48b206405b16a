"""[events], [events.pre_upload] and [[events.actions]]: what the loader accepts, and
what it refuses with a message naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_settings
from gateway.config.model import Settings


def load(tmp_path: Path, text: str) -> Settings:
    config = tmp_path / "gateway.toml"
    config.write_text(text)
    return load_settings(config, env={})


def test_a_full_configuration(tmp_path: Path) -> None:
    events = load(tmp_path, """
[events]
node_name = "ftp-1"
max_attempts = 0
max_age = "2h"

[[events.actions]]
kind = "webhook"
url = "https://example.com/hook"
headers = { Authorization = "Bearer t" }
paths = ["/inbox/**"]

[[events.actions]]
name = "archive"
kind = "command"
command = ["/usr/local/bin/archive", "--cold"]
events = ["upload", "delete"]
accounts = ["camera1"]
""").events
    assert events.active and events.node_name == "ftp-1"
    assert events.max_attempts is None and events.max_age == 7200
    hook, archive = events.actions
    assert hook.name == "webhook-1" and hook.events == ("upload",) and hook.headers == (("Authorization", "Bearer t"),)
    assert archive.command == ("/usr/local/bin/archive", "--cold") and archive.accounts == ("camera1",)
    assert not load(tmp_path, "").events.active
    assert not load(tmp_path, """
[events]
enabled = false
[[events.actions]]
kind = "command"
command = ["true"]
""").events.active


@pytest.mark.parametrize(("text", "message"), [
    ('[[events.actions]]\nkind = "webhook"\n', r"events\.actions\[0\]: a webhook action needs url"),
    ('[[events.actions]]\nurl = "http://x"\n', r"kind is required"),
    ('[[events.actions]]\nkind = "email"\n', r"events\.actions\[0\]\.kind: expected one of webhook, command"),
    ('[[events.actions]]\nkind = "command"\ncommand = "  "\n', r"command: expected a command as a list"),
    ('[[events.actions]]\nkind = "webhook"\nurl = "http://x"\nevents = ["uplaod"]\n', r"unknown event 'uplaod'"),
    ('[[events.actions]]\nkind = "webhook"\nurl = "http://x"\npaths = ["inbox/*"]\n', r"start with /"),
    ('[[events.actions]]\nkind = "webhook"\nurl = "file:///etc"\n', r"http:// or https:// URL"),
    ('[[events.actions]]\nkind = "webhook"\nurl = "http://x"\nheaders = { "a b" = "c" }\n', r"bad HTTP header"),
    ('[[events.actions]]\nkind = "webhook"\nurl = "http://x"\nshell = true\n', r"unknown key"),
    ('[[events.actions]]\nname = "a"\nkind = "webhook"\nurl = "http://x"\n'
     '[[events.actions]]\nname = "a"\nkind = "webhook"\nurl = "http://y"\n', r"duplicate action name 'a'"),
    ('[events.pre_upload]\nurl = "http://x"\ncommand = ["y"]\n', r"give one of them"),
    ('[events.pre_upload]\nurl = "http://x"\nrefuse_code = 200\n', r"refuse_code: expected one of"),
    ('[events]\nconcurrency = 0\n', r"events\.concurrency: expected at least 1"),
])
def test_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, text)
