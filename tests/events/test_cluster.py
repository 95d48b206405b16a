"""Two ``gateway serve`` nodes on one PostgreSQL, one receiver: each event is
delivered once, by whichever node claimed it."""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path

from tests.events.conftest import PASSWORD, eventually, in_thread, outbox_rows, upload, write_config
from tests.users_db.conftest import add_account


async def test_two_nodes_deliver_each_event_once(tmp_path: Path, pg_url: str, gateways, receivers) -> None:
    receiver = receivers("shared").start()
    for login in ("alice", "bob"):
        await add_account(pg_url, login, PASSWORD, root=tmp_path / "files" / login)
    nodes = []
    for name in ("node-1", "node-2"):
        config = write_config(tmp_path, f"""
[users.database]
url = "{pg_url}"

[events]
node_name = "{name}"
poll_interval = "50ms"

[[events.actions]]
kind = "webhook"
url = "{receiver.url}"
secret = "shared"
events = ["upload", "delete"]
""", static=False, name=f"{name}.toml")
        nodes.append(gateways(config))

    expected = []
    for n in range(12):
        node = nodes[n % 2]
        user = ("alice", "bob")[(n // 2) % 2]
        name = f"/file-{n}.bin"
        assert (await in_thread(upload, node.port, name, b"%d" % n, user)).startswith("226")
        expected.append((user, name))

    async def all_delivered() -> bool:
        rows = await outbox_rows(pg_url)
        return len(rows) == 12 and all(row["status"] == "delivered" for row in rows)

    await eventually(all_delivered, what="every event delivered")
    requests = receiver.requests
    counts = Counter(request.event_id for request in requests)
    assert all(request.verified and request.answered == 200 for request in requests)
    assert len(counts) == 12 and set(counts.values()) == {1}, counts
    events = [json.loads(request.body) for request in requests]
    assert sorted((e["account"], e["path"]) for e in events) == sorted(expected)
    assert {e["node"] for e in events} == {"node-1", "node-2"}  # recorded on both nodes
    for user in ("alice", "bob"):  # each account's events arrived in their order
        theirs = [e["path"] for e in events if e["account"] == user]
        assert theirs == [name for login, name in expected if login == user]
    for node in nodes:
        node.signal(signal.SIGTERM)
        assert node.wait_exit() == 0
