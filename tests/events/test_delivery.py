"""Webhook delivery through a receiver that is down, then slow, then failing, then
back: every event arrives, signed, in order per account, repeats only under the same
id.  The service runs in this process from a configuration file."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from gateway.events.signing import sign, verify
from gateway.users.database.engine import create_engine
from tests.events.conftest import eventually, in_thread, outbox_rows, upload, write_config

SECRET = "s3cret-key"


def events_config(tmp_path: Path, url: str, extra: str = "") -> tuple[Path, str]:
    db = f"sqlite+aiosqlite:///{tmp_path / 'outbox.sqlite3'}"
    config = write_config(tmp_path, f"""
[events]
database_url = "{db}"
node_name = "node-a"
poll_interval = "100ms"
retry_base = "50ms"
retry_max = "300ms"
max_attempts = 0

{extra}
[[events.actions]]
name = "jobs"
kind = "webhook"
url = "{url}"
secret = "{SECRET}"
timeout = "500ms"
paths = ["/inbox/*"]
""")
    return config, db


async def test_every_event_arrives_through_outages(tmp_path: Path, service, receivers) -> None:
    receiver = receivers(SECRET, plan=["slow", "slow", "error", "error"], slow_for=2.0)
    config, db = events_config(tmp_path, receiver.url)
    (tmp_path / "files" / "alice" / "inbox").mkdir(parents=True)
    _, port = await service(config)

    names = [f"/inbox/image-{n}.jpg" for n in range(4)]
    for n, name in enumerate(names):
        assert (await in_thread(upload, port, name, b"pixels %d" % n)).startswith("226")
    # not an event for this action: outside /inbox
    assert (await in_thread(upload, port, "/elsewhere.txt", b"x")).startswith("226")

    # the receiver is down: every row is written; the first is tried again and again,
    # the others wait for it (order per account)
    async def tried() -> bool:
        rows = await outbox_rows(db)
        return (len(rows) == 4 and all(r["status"] == "pending" for r in rows)
                and rows[0]["attempts"] >= 2 and all(r["attempts"] == 0 for r in rows[1:]))

    await eventually(tried, what="failed tries while the receiver is down")
    receiver.start()

    async def delivered() -> bool:
        rows = await outbox_rows(db)
        return len(rows) == 4 and all(r["status"] == "delivered" for r in rows)

    await eventually(delivered, what="every row delivered")
    requests = receiver.requests
    assert all(r.verified for r in requests), "a request without a valid signature"
    events = {r.event_id: json.loads(r.body) for r in requests}
    assert sorted(e["path"] for e in events.values()) == names
    assert {r.event_id for r in receiver.answered_ok()} == set(events)
    # repeats (the slow answers came too late, the 500s) carry the same id and body
    for request in requests:
        assert request.body == next(r.body for r in requests if r.event_id == request.event_id)
        assert events[request.event_id]["id"] == request.event_id
    # in order: an event is first sent only after the one before it was taken
    first_seen: list[str] = []
    for request in requests:
        path = events[request.event_id]["path"]
        if path not in first_seen:
            first_seen.append(path)
    assert first_seen == names
    assert len(requests) >= 4 + 4  # the planned slow and failing answers were retried

    event = events[requests[-1].event_id]
    assert event["kind"] == "upload" and event["account"] == "alice" and event["node"] == "node-a"
    assert event["size"] == len(b"pixels 3")
    assert len(event["checksums"]["sha256"]) == 64
    assert event["storage"]["url"].startswith("file://") and event["storage"]["url"].endswith("/inbox/image-3.jpg")
    assert event["time"].endswith("Z") and event["client"]["address"] == "127.0.0.1"


async def test_signature_and_metrics(tmp_path: Path, service, receivers) -> None:
    receiver = receivers(SECRET).start()
    config, db = events_config(tmp_path, receiver.url, extra='\n[metrics]\nlisten = "127.0.0.1:0"\n')
    (tmp_path / "files" / "alice" / "inbox").mkdir(parents=True)
    running, port = await service(config)
    await in_thread(upload, port, "/inbox/a.jpg", b"a")
    await in_thread(receiver.wait_for, lambda requests: len(requests) == 1)
    request = receiver.requests[0]
    assert request.verified
    assert not verify(SECRET, request.body + b" ", sign(SECRET, request.body))
    assert not verify("another key", request.body, sign(SECRET, request.body))

    def scrape() -> str:
        url = f"http://127.0.0.1:{running.running.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read().decode()

    async def counted() -> bool:
        return 'gateway_events_delivered_total{action="jobs"} 1.0' in await in_thread(scrape)

    await eventually(counted, what="the delivery counted")
    text = await in_thread(scrape)
    assert 'gateway_events_queued_total{action="jobs"} 1.0' in text
    assert 'gateway_events_delivery_seconds_count{action="jobs"} 1.0' in text


async def rename_table(url: str, old: str, new: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql(f"ALTER TABLE {old} RENAME TO {new}")
    finally:
        await engine.dispose()


async def test_events_wait_in_memory_while_the_outbox_cannot_be_written(
    tmp_path: Path, service, receivers
) -> None:
    receiver = receivers(SECRET).start()
    config, db = events_config(tmp_path, receiver.url)
    (tmp_path / "files" / "alice" / "inbox").mkdir(parents=True)
    _, port = await service(config)
    await rename_table(db, "event_outbox", "event_outbox_away")  # every write now fails
    names = [f"/inbox/{n}.jpg" for n in range(3)]
    for name in names:  # the uploads still succeed
        assert (await in_thread(upload, port, name, b"data")).startswith("226")
    assert receiver.requests == []
    await rename_table(db, "event_outbox_away", "event_outbox")

    async def delivered() -> bool:
        rows = await outbox_rows(db)
        return len(rows) == 3 and all(r["status"] == "delivered" for r in rows)

    await eventually(delivered, what="the held events written and delivered")
    assert [json.loads(r.body)["path"] for r in receiver.requests] == names


async def test_a_slow_receiver_holds_up_only_that_accounts_events(tmp_path: Path, service, receivers) -> None:
    receiver = receivers(SECRET, plan=["slow"], slow_for=60.0).start()
    db = f"sqlite+aiosqlite:///{tmp_path / 'outbox.sqlite3'}"
    config = write_config(tmp_path, f"""
[events]
database_url = "{db}"
poll_interval = "100ms"

[[events.actions]]
name = "jobs"
kind = "webhook"
url = "{receiver.url}"
timeout = "50s"
""")
    _, port = await service(config)
    await in_thread(upload, port, "/a1.jpg", b"a", "alice")  # its answer does not come
    await in_thread(receiver.wait_for, lambda requests: len(requests) == 1)
    await in_thread(upload, port, "/a2.jpg", b"a", "alice")
    await in_thread(upload, port, "/b1.jpg", b"b", "bob")
    await in_thread(receiver.wait_for, lambda requests: any(
        json.loads(r.body)["path"] == "/b1.jpg" for r in requests))
    rows = {r["path"]: r for r in await outbox_rows(db)}
    assert rows["/b1.jpg"]["status"] in ("pending", "delivered")
    # alice's first event is still in flight, and her second waits behind it
    assert rows["/a1.jpg"]["status"] == "pending" and rows["/a1.jpg"]["claimed_by"]
    assert rows["/a2.jpg"]["attempts"] == 0 and rows["/a2.jpg"]["claimed_by"] is None
    assert [json.loads(r.body)["path"] for r in receiver.requests] == ["/a1.jpg", "/b1.jpg"]
    receiver.stop()  # ends the slow answer; the service then stops without waiting for it
