"""Guessing passwords from one address: each failure waits longer, then a ban."""

from __future__ import annotations

import ftplib
import time
from pathlib import Path

from gateway.users.database.limiter import LimiterSettings, LoginLimiter
from tests.users_db.conftest import add_account, eventually, ftp_connect, ftp_login, in_thread


async def test_failures_slow_down_then_ban_then_recover(
    database_url: str, root: Path, make_manager, make_server
) -> None:
    await add_account(database_url, "alice", "s3cret", root=root)
    settings = LimiterSettings(base_delay=0.05, factor=2.0, max_delay=1.0, ban_after=4, ban_duration=1.0)
    server = await make_server(make_manager(database_url, login_limiter=LoginLimiter(settings)))
    port = server.server_port

    def guesses() -> tuple[list[float], list[str]]:
        durations: list[float] = []
        replies: list[str] = []
        ftp = ftp_connect(port)
        try:
            for attempt in range(4):
                ftp.sendcmd("USER alice")
                started = time.perf_counter()
                try:
                    ftp.sendcmd(f"PASS guess{attempt}")
                except ftplib.error_perm as exc:
                    replies.append(str(exc))
                durations.append(time.perf_counter() - started)
            try:  # banned now: even the right password gets 421 and the door
                ftp.sendcmd("USER alice")
            except ftplib.error_temp as exc:
                replies.append(str(exc))
        finally:
            ftp.close()
        return durations, replies

    durations, replies = await in_thread(guesses)
    assert [r[:3] for r in replies] == ["530"] * 4 + ["421"]
    # 0.05, 0.1, 0.2, 0.4 s: each failure waits at least its delay (a busy machine
    # only adds to it), and the fourth waits clearly longer than the first
    assert all(took >= delay for took, delay in zip(durations, (0.05, 0.1, 0.2, 0.4), strict=True)), durations
    assert durations[3] - durations[0] >= 0.2, durations

    def right_password() -> str:
        try:
            ftp = ftp_login(port, "alice", "s3cret")
        except ftplib.error_temp as exc:
            return str(exc)
        ftp.quit()
        return "230"

    assert (await in_thread(right_password)).startswith("421")  # a new connection too

    async def ban_over() -> bool:
        return await in_thread(right_password) == "230"

    started = time.monotonic()
    await eventually(ban_over, timeout=5)
    assert time.monotonic() - started >= 0.3  # the ban lasted


def test_limiter_settings_are_validated() -> None:
    import pytest

    with pytest.raises(ValueError):
        LimiterSettings(factor=0.5)
    limiter = LoginLimiter(LimiterSettings(base_delay=1, factor=3, max_delay=5, ban_after=0))
    assert [limiter.failure("192.0.2.1") for _ in range(4)] == [1, 3, 5, 5]
    assert limiter.ban_remaining("192.0.2.1") == 0  # ban_after=0: never banned
    limiter.success("192.0.2.1")
    assert limiter.failure("192.0.2.1") == 1  # success forgot the failures
