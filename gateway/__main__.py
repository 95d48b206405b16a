"""``python -m gateway``: a server from the command line (aioftp's options, plus TLS)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway import AbstractPathIO, MemoryPathIO, PathIO, Permission, Server, User
from gateway.server.core import DEFAULT_DATA_TIMEOUT, DEFAULT_DATA_TLS_HANDSHAKE_TIMEOUT
from gateway.server.encodings import check_encoding
from gateway.server.gctuning import tune_for_serving
from gateway.server.quirks import DeviceQuirks

__all__ = ("main", "build_parser")


def _port_range(text: str) -> range:
    low, sep, high = text.partition("-")
    try:
        start = int(low)
        end = int(high) if sep else start
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected PORT or LOW-HIGH, got {text!r}") from None
    if not (1 <= start <= end <= 65535):
        raise argparse.ArgumentTypeError(f"port range out of bounds: {text!r}")
    return range(start, end + 1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gateway",
        description="Simple FTP server (aioftp-compatible options).",
    )
    parser.add_argument("--user", metavar="LOGIN", dest="login", help="user name to login")
    parser.add_argument("--pass", metavar="PASSWORD", dest="password", help="password to login")
    parser.add_argument("-d", metavar="DIRECTORY", dest="home", default=".",
                        help="the directory to share, or a storage URL such as s3://bucket/prefix "
                             "(default current directory)")
    parser.add_argument("-q", "--quiet", action="store_true", help="set logging level to 'ERROR'")
    parser.add_argument("--memory", action="store_true", help="use memory storage")
    parser.add_argument("--host", default=None, help="host to listen on (default all interfaces)")
    parser.add_argument("--port", type=int, default=2121, help="port to listen on (default 2121)")
    parser.add_argument("--family", choices=("ipv4", "ipv6", "auto"), default="auto",
                        help="socket family (default auto)")
    parser.add_argument("--read-only", action="store_true", help="refuse every write")
    parser.add_argument("--tls-cert", metavar="FILE", help="certificate (PEM) for FTPS")
    parser.add_argument("--tls-key", metavar="FILE", help="private key (PEM) for FTPS")
    parser.add_argument("--implicit-tls", action="store_true",
                        help="TLS from the first byte (implicit FTPS) instead of AUTH TLS")
    parser.add_argument("--require-tls", action="store_true",
                        help="refuse login and clear data connections without TLS")
    parser.add_argument("--data-ports", type=_port_range, metavar="LOW-HIGH",
                        help="passive data port range")
    parser.add_argument("--passive-address", metavar="IPV4",
                        help="address announced in PASV replies (NAT, containers)")
    parser.add_argument("--encoding", default="utf-8",
                        help="file name encoding of the listener (e.g. cp1251, latin-1)")
    parser.add_argument("--legacy-devices", metavar="QUIRKS", default=None,
                        help="replies old devices need: 'all' or a comma list of "
                             "allo_ok,mkd_existing_ok,site_noop,stor_creates_parents")
    parser.add_argument("--data-timeout", type=_seconds, default=DEFAULT_DATA_TIMEOUT, metavar="SECONDS",
                        help="drop a data connection stalled this long (default %(default)s; 0: never)")
    parser.add_argument("--data-tls-handshake-timeout", type=_seconds, metavar="SECONDS",
                        default=DEFAULT_DATA_TLS_HANDSHAKE_TIMEOUT,
                        help="seconds a PROT P data connection has to finish TLS (default %(default)s)")
    parser.add_argument("--debug", action="store_true", help="log every command and reply")
    return parser


def _seconds(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value or None


def _tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if not cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def build_server(args: argparse.Namespace) -> Server:
    """A configured (not started) server for parsed command-line arguments."""
    factory: type[AbstractPathIO[Any]]
    base: str | Path
    if args.memory:
        factory, base = MemoryPathIO, Path("/")
    elif "://" in args.home:
        # a storage URL (s3://bucket/prefix, fsspec+...://): the backend registry serves
        # it, with endpoint and credentials from the standard AWS environment
        factory, base = PathIO, args.home
    else:
        factory, base = PathIO, Path(args.home).resolve()
    permissions = [Permission("/", readable=True, writable=not args.read_only)]
    user = User(args.login, args.password, base_path=base, permissions=permissions)
    context = _tls_context(args.tls_cert, args.tls_key)
    return Server(
        [user],
        path_io_factory=factory,
        ssl=context if args.implicit_tls else None,
        tls_context=context,
        require_tls=args.require_tls,
        data_ports=args.data_ports,
        ipv4_pasv_forced_response_address=args.passive_address,
        encoding=check_encoding(args.encoding),
        device_quirks=DeviceQuirks.from_names(args.legacy_devices) if args.legacy_devices else None,
        data_timeout=args.data_timeout,
        data_tls_handshake_timeout=args.data_tls_handshake_timeout or DEFAULT_DATA_TLS_HANDSHAKE_TIMEOUT,
    )


async def serve(args: argparse.Namespace) -> None:
    server = build_server(args)
    family = {"ipv4": socket.AF_INET, "ipv6": socket.AF_INET6, "auto": socket.AF_UNSPEC}[args.family]
    await server.run(args.host, args.port, family=family)


def _install_uvloop(tls: bool) -> str:
    """Use uvloop when installed, except for TLS.

    uvloop's TLS transport (0.23) drops decrypted bytes it still holds for a paused
    reader when the peer's TCP FIN arrives (``SSLProtocol.eof_received`` closes
    without delivering them), so a TLS upload under backpressure could land
    truncated.  asyncio's own TLS transport delivers them; TLS servers use it.
    """
    if tls:
        return "asyncio (TLS)"
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.tls_cert is None and (args.implicit_tls or args.require_tls):
        parser.error("--implicit-tls and --require-tls need --tls-cert (and --tls-key)")
    if args.password is not None and args.login is None:
        parser.error("--pass needs --user")
    level = logging.ERROR if args.quiet else (logging.DEBUG if args.debug else logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s [%(name)s] %(message)s", datefmt="[%H:%M:%S]:")
    loop_name = _install_uvloop(tls=args.tls_cert is not None)
    logging.getLogger("gateway").info("event loop: %s", loop_name)
    try:
        context = _tls_context(args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as exc:
        parser.error(f"cannot load the TLS certificate/key: {exc}")
    del context
    tune_for_serving()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
