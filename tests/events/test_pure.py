"""The pure parts of events: payload, signature, matching, backoff, hook verdicts."""

from __future__ import annotations

import json

import pytest

from gateway.events.actions import event_environment
from gateway.events.backoff import Backoff
from gateway.events.matching import Selector, glob_regex, path_matches
from gateway.events.payload import encode, event_payload, iso_time, storage_location
from gateway.events.signing import sign, verify
from gateway.events.verdict import refusal, reply_text
from gateway.server.events import Operation, TransferRecord


def upload_operation(**changes: object) -> Operation:
    record = TransferRecord("STOR", "i", "/inbox/a.jpg", "alice", "10.0.0.7", size=5,
                            started=1000.0, finished=1002.5, status="complete",
                            checksums={"sha256": "ab" * 32, "crc32": "0badf00d"})
    fields: dict[str, object] = dict(
        kind="upload", session_id=7, login="alice", client_host="10.0.0.7", path="/inbox/a.jpg",
        real="/photos/alice/inbox/a.jpg", storage_root="s3://photos/alice", backend="s3",
        record=record, time=1764688348.1239,
    )
    fields.update(changes)
    return Operation(**fields)  # type: ignore[arg-type]


def test_payload_of_an_upload_to_s3() -> None:
    payload = event_payload(upload_operation(), event_id="e-1", node="n1")
    assert payload["id"] == "e-1" and payload["kind"] == "upload" and payload["node"] == "n1"
    assert payload["account"] == "alice" and payload["path"] == "/inbox/a.jpg"
    assert payload["storage"] == {"root": "s3://photos/alice", "path": "/photos/alice/inbox/a.jpg",
                                  "url": "s3://photos/alice/inbox/a.jpg", "bucket": "photos",
                                  "key": "alice/inbox/a.jpg"}
    assert payload["size"] == 5 and payload["checksums"]["sha256"] == "ab" * 32
    assert payload["duration"] == 2.5 and payload["client"] == {"address": "10.0.0.7"}
    assert payload["time"] == "2025-12-02T15:12:28.123Z" and payload["session"] == 7
    assert "target" not in payload


def test_payload_of_a_rename_and_a_login() -> None:
    rename = event_payload(upload_operation(kind="rename", record=None, target="/done/a.jpg",
                                            target_real="/photos/alice/done/a.jpg"),
                           event_id="e", node="n")
    assert rename["target"] == "/done/a.jpg" and rename["target_storage"]["key"] == "alice/done/a.jpg"
    assert rename["size"] is None and rename["checksums"] == {} and rename["duration"] is None
    login = event_payload(Operation("login_failed", 1, "mallory", "::1"), event_id="e", node="n")
    assert login["storage"] is None and login["path"] is None and login["account"] == "mallory"


def test_storage_locations() -> None:
    def url(root: str | None, real: str) -> object:
        where = storage_location(root, real)
        assert where is not None
        return where["url"]

    assert url("/srv/ftp/alice", "/srv/ftp/alice/a b.jpg") == "file:///srv/ftp/alice/a%20b.jpg"
    assert url(None, "/srv/x") == "file:///srv/x"
    assert url("memory://", "/alice/a") == "memory:///alice/a"
    assert url("gcs://b/p", "/b/p/x") == "gcs://b/p/x"
    assert storage_location("/srv", None) is None


def test_encoding_is_stable_and_utf8() -> None:
    payload = event_payload(upload_operation(path="/inbox/café.jpg"), event_id="e", node="n")
    body = encode(payload)
    assert body == encode(json.loads(body))
    assert "café".encode() in body and b" " not in body.replace(b"T15", b"")


def test_iso_time() -> None:
    assert iso_time(0) == "1970-01-01T00:00:00.000Z"


def test_signature() -> None:
    body = b'{"id":"1"}'
    header = sign("key", body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert header == sign(b"key", body)
    assert verify("key", body, header)
    assert not verify("key", body + b"\n", header)
    assert not verify("other", body, header)
    assert not verify("key", body, None) and not verify("key", body, header[7:])
    # a known value (RFC 4231 style check of the construction)
    assert sign("key", b"The quick brown fox jumps over the lazy dog") == (
        "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8")


@pytest.mark.parametrize(("pattern", "path", "expected"), [
    ("/inbox/*", "/inbox/a.jpg", True),
    ("/inbox/*", "/inbox/sub/a.jpg", False),
    ("/inbox/**", "/inbox/sub/a.jpg", True),
    ("/**/*.jpg", "/a/b/c.jpg", True),
    ("/**/*.jpg", "/a/b/c.png", False),
    ("/*.JPG", "/a.jpg", False),
    ("/img-?.jpg", "/img-1.jpg", True),
    ("/img-?.jpg", "/img-12.jpg", False),
    ("/img-[0-4].jpg", "/img-3.jpg", True),
    ("/img-[!0-4].jpg", "/img-3.jpg", False),
    ("/a+b(c).jpg", "/a+b(c).jpg", True),
    ("/[unclosed", "/[unclosed", True),
])
def test_path_globs(pattern: str, path: str, expected: bool) -> None:
    assert bool(glob_regex(pattern).match(path)) is expected


def test_selector() -> None:
    everything = Selector(events=("*",))
    assert everything.matches("login", None, None)
    uploads = Selector()
    assert uploads.matches("upload", "alice", "/x") and not uploads.matches("delete", "alice", "/x")
    scoped = Selector(events=("upload", "rename"), accounts=("alice",), paths=("/inbox/*",))
    assert scoped.matches("upload", "alice", "/inbox/a")
    assert not scoped.matches("upload", "bob", "/inbox/a")
    assert not scoped.matches("upload", "alice", "/outbox/a")
    assert scoped.matches("rename", "alice", "/tmp/a.part", "/inbox/a")  # moved into the inbox
    assert not path_matches(("/x",), None) and path_matches((), None)


def test_backoff_schedule() -> None:
    backoff = Backoff(base=1.0, cap=60.0, max_attempts=5, max_age=3600.0, jitter=0.5)
    assert [backoff.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff.delay(3, spread=1.0) == 2.0  # half taken off at most
    assert backoff.delay(10_000) == 60.0
    assert not backoff.gives_up(4, created=0.0, now=10.0)
    assert backoff.gives_up(5, created=0.0, now=10.0)
    assert backoff.gives_up(1, created=0.0, now=3600.0)
    endless = Backoff(max_attempts=None, max_age=None)
    assert not endless.gives_up(10**6, created=0.0, now=1e12)


def test_hook_verdicts() -> None:
    assert refusal("553 names must end in .jpg\nmore") == ("553", "names must end in .jpg")
    assert refusal("not today") == ("550", "not today")
    assert refusal("", "553") == ("553", "upload refused")
    assert refusal("200 fine") == ("550", "200 fine")  # not a refusal code: text only
    assert refusal("421 closing") == ("550", "421 closing")
    assert refusal("452 disk full") == ("452", "disk full")
    assert reply_text("bad\x07 \x1b[31mred", "x") == "bad [31mred"
    assert len(reply_text("y" * 1000, "x")) == 200


def test_command_environment() -> None:
    body = encode(event_payload(upload_operation(), event_id="e-9", node="n"))
    env = event_environment(body)
    assert env["GATEWAY_EVENT_ID"] == "e-9" and env["GATEWAY_EVENT_KIND"] == "upload"
    assert env["GATEWAY_EVENT_BUCKET"] == "photos" and env["GATEWAY_EVENT_KEY"] == "alice/inbox/a.jpg"
    assert env["GATEWAY_EVENT_SIZE"] == "5" and env["GATEWAY_EVENT_SHA256"] == "ab" * 32
    assert "GATEWAY_EVENT_TARGET" not in env
    assert event_environment(b"not json") == {}
