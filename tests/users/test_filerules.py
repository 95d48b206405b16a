"""File name rules and the largest file, decided on virtual paths without a server."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from gateway import User
from gateway.users.filerules import FileRules, describe_size


def test_no_rules_restrict_nothing() -> None:
    rules = FileRules()
    assert not rules.active and not rules.hides
    assert rules.creation_refusal("/a/setup.exe", is_dir=False) is None
    assert rules.size_refusal(10**15) is None
    assert not rules.hidden("/anything")


def test_denied_names_refuse_files_and_directories_case_insensitively() -> None:
    rules = FileRules(deny=("*.exe", "*.tmp"))
    assert rules.creation_refusal("/in/setup.exe", is_dir=False)
    assert rules.creation_refusal("/in/SETUP.EXE", is_dir=False)
    assert rules.creation_refusal("/in/cache.tmp", is_dir=True)
    assert rules.creation_refusal("/in/photo.jpg", is_dir=False) is None
    reason = rules.creation_refusal("/in/Setup.Exe", is_dir=False)
    assert reason == "file name not allowed: 'Setup.Exe' matches a denied name pattern"


def test_case_sensitive_patterns() -> None:
    rules = FileRules(deny=("*.exe",), case_sensitive=True)
    assert rules.creation_refusal("/setup.exe", is_dir=False)
    assert rules.creation_refusal("/SETUP.EXE", is_dir=False) is None


def test_nothing_may_be_created_below_a_denied_directory() -> None:
    rules = FileRules(deny=("private",))
    assert rules.denied("/private/notes.txt") == "private"
    assert rules.creation_refusal("/a/private/b/c.txt", is_dir=False)
    assert rules.creation_refusal("/a/privateer/c.txt", is_dir=False) is None


def test_path_patterns_match_the_whole_virtual_path() -> None:
    rules = FileRules(deny=("/incoming/*.part", "/config"))
    assert rules.creation_refusal("/incoming/a.part", is_dir=False)
    assert rules.creation_refusal("/incoming/deeper/a.part", is_dir=False)  # * crosses /
    assert rules.creation_refusal("/other/a.part", is_dir=False) is None
    assert rules.denied("/config/x.ini") == "/config"
    assert rules.denied("/configs/x.ini") is None


def test_allowed_names_govern_files_only_and_deny_wins() -> None:
    rules = FileRules(allow=("*.jpg", "*.mp4"), deny=("secret*",))
    assert rules.creation_refusal("/cam/2024-01-01", is_dir=True) is None
    assert rules.creation_refusal("/cam/img.JPG", is_dir=False) is None
    assert rules.creation_refusal("/cam/notes.txt", is_dir=False) == (
        "file name not allowed: it matches none of the allowed name patterns"
    )
    assert rules.creation_refusal("/cam/secret.jpg", is_dir=False)
    assert rules.creation_refusal("/cam/secret", is_dir=True)


def test_allowed_path_patterns() -> None:
    rules = FileRules(allow=("/uploads/*",))
    assert rules.creation_refusal("/uploads/x.bin", is_dir=False) is None
    assert rules.creation_refusal("/elsewhere/x.bin", is_dir=False)


def test_hiding_needs_both_the_switch_and_denied_names() -> None:
    assert not FileRules(deny=("*.exe",)).hidden("/a.exe")
    assert not FileRules(hide_denied=True).hidden("/a.exe")
    rules = FileRules(deny=("*.exe", "private"), hide_denied=True)
    assert rules.hidden("/a.EXE")
    assert rules.hidden("/private")
    assert rules.hidden("/private/readme.txt")
    assert not rules.hidden("/public/readme.txt")
    assert rules.hidden_entry(PurePosixPath("/dir"), "tool.exe")
    assert not rules.hidden_entry(PurePosixPath("/dir"), "tool.txt")


def test_largest_file() -> None:
    rules = FileRules(max_file_size=100 * 1024 * 1024)
    assert rules.active
    assert rules.size_refusal(100 * 1024 * 1024) is None
    assert rules.size_refusal(100 * 1024 * 1024 + 1) == (
        "exceeded storage allocation: files may be at most 104857600 bytes (100 MiB)"
    )
    assert describe_size(1000) == "1000 bytes"
    assert describe_size(3 * 1024**3) == "3221225472 bytes (3 GiB)"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"deny": ("",)}, "expected a pattern"),
        ({"allow": ("a\nb",)}, "control characters"),
        ({"deny": ("incoming/*.tmp",)}, "must start with /"),
        ({"max_file_size": -1}, "must be >= 0"),
        ({"max_file_size": "10"}, "expected bytes"),
    ],
)
def test_bad_rules_are_refused_when_made(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FileRules(**kwargs)


def test_user_without_the_new_arguments_is_aioftp_s_user() -> None:
    user = User("alice", "pw")
    assert not user.addresses.active
    assert not user.file_rules.active
    assert repr(user) == repr(User("alice", "pw"))
    assert "allow_from" not in repr(user) and "max_file_size" not in repr(user)


def test_user_keeps_its_policy() -> None:
    user = User(
        "cam", "pw",
        allow_from=["10.0.0.0/8"], deny_from=["10.6.6.0/24"],
        allow_names=["*.jpg"], deny_names=["*.exe"], hide_denied=True,
        names_case_sensitive=True, max_file_size=1024,
    )
    assert user.addresses.permits("10.1.1.1") and not user.addresses.permits("10.6.6.1")
    assert user.file_rules == FileRules(
        allow=("*.jpg",), deny=("*.exe",), hide_denied=True, case_sensitive=True,
        max_file_size=1024,
    )
    text = repr(user)
    assert "allow_from=['10.0.0.0/8']" in text and "max_file_size=1024" in text
    with pytest.raises(ValueError, match="did you mean"):
        User("cam", "pw", allow_from=["10.0.0.1/8"])
    # one string is one pattern (networks: a comma-separated list)
    single = User("cam", "pw", deny_names="*.exe", allow_from="10.0.0.0/8, ::1")
    assert single.file_rules.deny == ("*.exe",)
    assert single.addresses.permits("::1") and not single.addresses.permits("192.0.2.1")
