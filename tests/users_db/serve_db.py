"""A gateway node for the multi-process tests: ``Server(DatabaseUserManager(url))``.

Usage: python -m tests.users_db.serve_db URL [--heartbeat S] [--stale-after S]
Prints ``PORT <n>`` once listening; serves until SIGTERM, then gives its slots back.
A SIGKILL instead leaves its session rows behind, as a crashed node would.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from gateway import Server
from gateway.users.database.hashing import HashSettings
from gateway.users.database.manager import DatabaseUserManager


async def serve(args: argparse.Namespace) -> None:
    manager = DatabaseUserManager(
        args.url,
        hashing=HashSettings(time_cost=1, memory_cost=8, parallelism=1),
        login_limiter=None,
        cache_ttl=0.2,
        heartbeat_interval=args.heartbeat,
        stale_after=args.stale_after,
    )
    await manager.connect()
    server = Server(manager)
    await server.start("127.0.0.1", 0)
    print(f"PORT {server.server_port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.close()
    await manager.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--heartbeat", type=float, default=0.3)
    parser.add_argument("--stale-after", type=float, default=1.5)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
