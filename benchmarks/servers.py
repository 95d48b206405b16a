"""Entry points for the reference servers the benchmark compares against.

Each one runs in its own process, started by ``benchmarks/run.py``::

    python benchmarks/servers.py aioftp    --dir DIR --port P [--loop uvloop|asyncio]
    python benchmarks/servers.py pyftpdlib --dir DIR --port P
    python benchmarks/servers.py gateway-s3 --dir s3://BUCKET/PREFIX --port P

gateway-s3 takes its S3 storage options (endpoint, keys, part size) as JSON in the
``GATEWAY_BENCH_S3_OPTIONS`` environment variable.

Both serve DIR to the user ``bench``/``bench`` with full rights on 127.0.0.1 and
log only errors (gateway is started with ``-q``, so all three are equally quiet).
The first line on stdout names the event loop in use.  The module imports
nothing heavy at top level so the servers' RSS is not inflated by the harness.
"""

from __future__ import annotations

import argparse
import logging
import sys

HOST = "127.0.0.1"
LOGIN = PASSWORD = "bench"
BACKLOG = 1024


def run_aioftp(directory: str, port: int, loop_name: str) -> None:
    import asyncio

    import aioftp

    if loop_name == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    async def serve() -> None:
        # Default PathIO (aioftp's blocking local-disk I/O) and default permissions
        # (read/write on "/").  The listen backlog is raised to the same 1024 as the
        # other two servers; aioftp forwards start_server() keyword arguments.
        server = aioftp.Server([aioftp.User(LOGIN, PASSWORD, base_path=directory)])
        await server.run(HOST, port, backlog=BACKLOG)

    print(f"loop={loop_name}", flush=True)
    asyncio.run(serve())


def run_pyftpdlib(directory: str, port: int) -> None:
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer

    authorizer = DummyAuthorizer()
    authorizer.add_user(LOGIN, PASSWORD, directory, perm="elradfmwMT")
    handler = FTPHandler
    handler.authorizer = authorizer
    server = FTPServer((HOST, port), handler, backlog=BACKLOG)
    server.max_cons = 2048  # 200 control + 200 data connections fit easily
    server.max_cons_per_ip = 0
    print("loop=pyftpdlib-ioloop", flush=True)
    server.serve_forever()


def run_gateway_s3(root: str, port: int) -> None:
    import asyncio
    import json
    import os

    import uvloop

    from gateway import Server, User

    options = json.loads(os.environ.get("GATEWAY_BENCH_S3_OPTIONS", "{}"))
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    async def serve() -> None:
        server = Server([User(LOGIN, PASSWORD, base_path=root)], storage_options=options)
        await server.run(HOST, port, backlog=BACKLOG)

    print("loop=uvloop", flush=True)
    asyncio.run(serve())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("aioftp", "pyftpdlib", "gateway-s3"))
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args(argv)
    # Configured before the servers start so neither installs its INFO-level logging.
    logging.basicConfig(
        level=logging.ERROR, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    if args.kind == "aioftp":
        run_aioftp(args.dir, args.port, args.loop)
    elif args.kind == "gateway-s3":
        run_gateway_s3(args.dir, args.port)
    else:
        run_pyftpdlib(args.dir, args.port)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
