"""``gateway serve`` killed with SIGKILL after the client got 226 but before the event
was delivered (the receiver was down): the next start delivers it."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests.events.conftest import eventually, in_thread, outbox_rows, upload, write_config

SECRET = "k"


async def test_an_acknowledged_upload_is_delivered_after_a_kill(tmp_path: Path, gateways, receivers) -> None:
    receiver = receivers(SECRET)  # not listening yet
    db = f"sqlite+aiosqlite:///{tmp_path / 'outbox.sqlite3'}"
    config = write_config(tmp_path, f"""
[events]
database_url = "{db}"
node_name = "solo"
poll_interval = "100ms"
retry_base = "100ms"
retry_max = "500ms"
max_attempts = 0

[[events.actions]]
kind = "webhook"
url = "{receiver.url}"
secret = "{SECRET}"
timeout = "1s"
""")
    first = gateways(config)
    assert (await in_thread(upload, first.port, "/photo.jpg", b"jpeg bytes")).startswith("226")

    async def tried() -> bool:
        rows = await outbox_rows(db)
        return len(rows) == 1 and rows[0]["attempts"] >= 1 and rows[0]["status"] == "pending"

    await eventually(tried, what="a failed try while the receiver is down")
    first.signal(signal.SIGKILL)
    first.wait_exit()

    receiver.start()
    second = gateways(config)

    async def delivered() -> bool:
        rows = await outbox_rows(db)
        return rows[0]["status"] == "delivered"

    await eventually(delivered, what="delivery after the restart")
    [request] = receiver.answered_ok()
    event = json.loads(request.body)
    assert request.verified and event["path"] == "/photo.jpg" and event["size"] == len(b"jpeg bytes")
    assert event["id"] == (await outbox_rows(db))[0]["event_id"]
    second.signal(signal.SIGTERM)
    assert second.wait_exit() == 0
