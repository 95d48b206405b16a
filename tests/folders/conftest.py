"""Fixtures for virtual folders: the accounts databases (SQLite and PostgreSQL), the
S3 test service, and ``gateway serve`` processes, from the suites that own them."""

from __future__ import annotations

from tests.s3.conftest import s3_options, s3_prefix  # noqa: F401
from tests.service.conftest import start_gateway  # noqa: F401
from tests.users_db.conftest import (  # noqa: F401
    database_kind,
    database_url,
    empty_database_url,
    make_manager,
    make_server,
    postgres_admin_url,
    postgres_template,
    root,
    sqlite_template,
)
