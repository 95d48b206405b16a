"""The outbox table on SQLite and PostgreSQL: its migration, claims and their order,
leases, retry and purge, and ``gateway events`` on it."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import inspect

from gateway.cli import main
from gateway.events import outbox
from gateway.users.database import schema
from gateway.users.database.engine import create_engine


async def tables(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await engine.dispose()


async def test_migration_up_and_down(database_url: str) -> None:
    assert "event_outbox" in await tables(database_url)
    engine = create_engine(database_url)
    try:
        await schema.downgrade(engine, "0006_quotas")
        assert "event_outbox" not in await tables(database_url)
        assert "users" in await tables(database_url)
        await schema.upgrade(engine)
        assert await schema.current_revision(engine) == schema.head_revision()
        await outbox.enqueue(engine, [row("e1", "a", "x")])
        assert (await outbox.counts(engine))["pending"] == 1
    finally:
        await engine.dispose()
    assert "event_outbox" in await tables(database_url)


def row(event_id: str, action: str, account: str, created: float = 1000.0) -> dict[str, object]:
    return {"event_id": event_id, "action": action, "account": account, "kind": "upload",
            "path": f"/{event_id}", "body": json.dumps({"id": event_id}), "created_at": created}


async def test_claims_keep_the_order_and_honour_leases(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await outbox.enqueue(engine, [row("x1", "a", "x"), row("x2", "a", "x"), row("y1", "a", "y"),
                                      row("x1", "b", "x")])
        await outbox.enqueue(engine, [row("x3", "a", "x")])
        now = 2000.0
        first = await outbox.claim(engine, "n1/1", lease=60, limit=10, now=now)
        # the oldest pending row of each (action, account), never a later one
        assert [(c.event_id, c.action) for c in first] == [("x1", "a"), ("y1", "a"), ("x1", "b")]
        assert await outbox.claim(engine, "n2/1", lease=60, limit=10, now=now) == []  # leased
        x1, y1, bx1 = first
        await outbox.mark_failed_try(engine, x1.id, "n1/1", error="HTTP 500", next_attempt_at=now + 5,
                                     give_up=False)
        await outbox.mark_delivered(engine, y1.id, now=now)
        # x1 waits for its retry; x2 may not overtake it; y has nothing more
        assert await outbox.claim(engine, "n2/1", lease=60, limit=10, now=now + 1) == []
        again = await outbox.claim(engine, "n2/1", lease=60, limit=10, now=now + 5)
        assert [(c.event_id, c.attempts) for c in again] == [("x1", 1)]
        # given up: the next one of the group goes
        await outbox.mark_failed_try(engine, x1.id, "n2/1", error="HTTP 500", next_attempt_at=now + 10,
                                     give_up=True)
        # a lease that ran out (its node died) is taken over
        taken = await outbox.claim(engine, "n3/1", lease=60, limit=10, now=now + 61)
        assert sorted((c.event_id, c.action) for c in taken) == [("x1", "b"), ("x2", "a")]
        # a restarting node takes its own claims back at once
        assert await outbox.release_claims(engine, "n3/") == 2
        assert await outbox.release_claims(engine, "n3/") == 0
        assert await outbox.counts(engine) == {"pending": 3, "delivered": 1, "failed": 1}
        # a try marked by a node that lost the lease changes nothing
        await outbox.mark_failed_try(engine, bx1.id, "n1/1", error="late", next_attempt_at=0,
                                     give_up=True)
        assert (await outbox.counts(engine))["failed"] == 1
    finally:
        await engine.dispose()


async def test_retry_and_purge(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        now = time.time()
        await outbox.enqueue(engine, [row("old", "a", "x", now - 7200), row("new", "a", "y", now),
                                      row("bad", "a", "z", now), row("wait", "a", "w", now)])
        claims = {c.event_id: c for c in await outbox.claim(engine, "n/1", lease=60, limit=10, now=now)}
        await outbox.mark_delivered(engine, claims["old"].id)
        await outbox.mark_delivered(engine, claims["new"].id)
        await outbox.mark_failed_try(engine, claims["bad"].id, "n/1", error="gone", next_attempt_at=now,
                                     give_up=True)
        assert await outbox.purge(engine, older_than=3600) == 1  # only the old delivered one
        assert await outbox.purge(engine, statuses=["pending"]) == 0  # never pending rows
        assert await outbox.retry(engine, failed=True) == 1
        rows = {r["event_id"]: r for r in await outbox.list_rows(engine)}
        assert rows["bad"]["status"] == "pending" and rows["bad"]["attempts"] == 0
        assert await outbox.retry(engine, ["new"]) == 1  # by event id: delivered again
        assert await outbox.retry(engine, [str(rows["new"]["id"])]) == 0  # already pending
        assert {r["event_id"] for r in await outbox.list_rows(engine, status="pending")} == {
            "new", "bad", "wait"}
    finally:
        await engine.dispose()


def test_the_command_line(tmp_path: Path) -> None:
    """``gateway events`` in this process (click's runner), on an embedded outbox."""
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'outbox.sqlite3'}"

    async def prepare() -> None:
        engine = create_engine(database_url)
        try:
            await outbox.ensure_table(engine)
            await outbox.enqueue(engine, [row("e-1", "jobs", "alice"), row("e-2", "jobs", "bob")])
            [one, two] = await outbox.claim(engine, "n/1", lease=60, limit=10)
            await outbox.mark_failed_try(engine, one.id, "n/1", error="HTTP 503 busy",
                                         next_attempt_at=0, give_up=True)
            await outbox.mark_delivered(engine, two.id)
        finally:
            await engine.dispose()

    asyncio.run(prepare())
    runner = CliRunner()

    def cli(*args: str) -> Result:
        return runner.invoke(main, ["events", *args, "--database-url", database_url])

    listed = cli("list")
    assert listed.exit_code == 0, listed.output
    assert "failed" in listed.output and "HTTP 503 busy" in listed.output and "/e-2" in listed.output
    failed = cli("list", "--status", "failed", "--json")
    [entry] = [json.loads(line) for line in failed.output.splitlines()]
    assert entry["event"] == {"id": "e-1"} and entry["status"] == "failed"
    retried = cli("retry", "--failed")
    assert retried.exit_code == 0 and "1 delivery queued again" in retried.output
    purged = cli("purge", "--delivered", "--older-than", "1s")
    assert purged.exit_code == 0 and "1 delivery deleted" in purged.output, purged.output
    assert "pending" in cli("list", "--status", "pending").output
    nothing = cli("retry")
    assert nothing.exit_code != 0 and "--failed" in nothing.output
    bad = cli("purge", "--older-than", "soon")
    assert bad.exit_code != 0 and "--older-than" in bad.output
    absent = runner.invoke(main, ["events", "list", "--database-url", f"sqlite:///{tmp_path / 'none.db'}"])
    assert absent.exit_code == 1 and f"no event outbox at {tmp_path / 'none.db'}" in absent.output
    assert not (tmp_path / "none.db").exists()  # looking made no empty database


async def test_a_start_takes_back_claims_only_under_a_name_of_its_own(tmp_path: Path) -> None:
    """With the host name as node name, sibling processes on the host hold claims under
    it: a start leaves them to their lease.  With ``node_name`` set they are its own."""
    import socket

    from gateway.config import load_settings
    from gateway.events.service import EventService

    url = f"sqlite+aiosqlite:///{tmp_path / 'outbox.sqlite3'}"
    action = '[[events.actions]]\nkind = "webhook"\nurl = "http://127.0.0.1:9/hook"\nname = "a"\n'
    engine = create_engine(url)
    try:
        await outbox.ensure_table(engine)
        await outbox.enqueue(engine, [row("e1", "a", "x")])
        host = socket.gethostname()
        [held] = await outbox.claim(engine, f"{host}/1-sibling", lease=3600, limit=10)
        assert held.event_id == "e1"

        for config, taken_back in (("", False), (f'node_name = "{host}"\n', True)):
            path = tmp_path / "gateway.toml"
            path.write_text(f'[events]\ndatabase_url = "{url}"\n{config}\n{action}')
            service = EventService(load_settings(path), manager=None)
            assert service.worker is not None
            service.worker.start = lambda: None  # type: ignore[method-assign]  # claims only
            await service.start()
            await service.stop()
            free = await outbox.claim(engine, "other/1", lease=1, limit=10)
            assert [c.event_id for c in free] == (["e1"] if taken_back else [])
    finally:
        await engine.dispose()
