#!/usr/bin/env bash
# Start the server on embedded defaults: 127.0.0.1:2121, serving ./var/ftp.
# Creates the virtualenv on first use.  Extra arguments go to `python -m gateway`
# (see `--help`), e.g. --user alice --pass secret, --port 2121, -d /srv/ftp.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if ! .venv/bin/python -c "import gateway" 2>/dev/null; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
fi
mkdir -p var/ftp
exec .venv/bin/python -m gateway --host 127.0.0.1 --port 2121 -d var/ftp "$@"
