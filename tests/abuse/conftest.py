"""Attacks run against a real server: the server suite's fixtures (a server on
loopback, raw and ftplib clients) serve here too, and the service suite's
``gateway serve`` process (for what only a killed process shows)."""

from tests.server.conftest import (  # noqa: F401  (fixtures)
    ca,
    client_tls,
    make_server,
    raw,
    raw_clients,
    root,
    server,
    server_tls,
)
from tests.service.conftest import start_gateway  # noqa: F401  (fixture)
