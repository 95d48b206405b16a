#!/usr/bin/env bash
# Start the server on embedded defaults: 127.0.0.1:2121, accounts in ./gateway.sqlite3
# (created on first start), files under ./var/ftp.  Creates the virtualenv on first use.
# Extra arguments go to `gateway serve` (see `.venv/bin/gateway serve --help`), e.g.
# --config gateway.toml, --port 2121, --root /srv/ftp.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if ! .venv/bin/python -c "import gateway.cli, sqlalchemy, argon2" 2>/dev/null; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
fi
mkdir -p var/ftp
exec .venv/bin/gateway serve "$@"
