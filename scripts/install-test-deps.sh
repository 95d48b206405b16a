#!/usr/bin/env bash
# Install the external FTP clients the interop tests drive (lftp, curl, wget),
# PostgreSQL for the accounts tests and HAProxy for the load-balancer tests.
# Idempotent and quiet: installs only what is missing. Run as root (Debian/Ubuntu).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

missing=()
for tool in lftp curl wget; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
# PostgreSQL for tests/users_db (the tests start the cluster and create their role)
command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql)
# HAProxy for tests/service/test_balancer.py (the tests run it in the foreground;
# /usr/sbin may be missing from a non-root PATH)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
# prlimit for tests/service/test_open_files.py (util-linux, in most base systems)
command -v prlimit >/dev/null 2>&1 || missing+=(util-linux)
# locale sources, from which tests/protocol builds a de_DE locale with localedef
[ -e /usr/share/i18n/locales/de_DE ] || missing+=(locales)
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-deps: need root to install: ${missing[*]}" >&2
    exit 1
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
fi
for tool in "${missing[@]}"; do
    [ "$tool" = postgresql ] && tool=pg_ctlcluster
    [ "$tool" = util-linux ] && tool=prlimit
    [ "$tool" = haproxy ] && [ -x /usr/sbin/haproxy ] && continue
    if [ "$tool" = locales ]; then
        [ -e /usr/share/i18n/locales/de_DE ] || { echo "install-test-deps: locales still missing" >&2; exit 1; }
        continue
    fi
    command -v "$tool" >/dev/null 2>&1 || { echo "install-test-deps: $tool still missing" >&2; exit 1; }
done
