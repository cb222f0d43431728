#!/usr/bin/env bash
# Make sure the PostgreSQL server programs (initdb, pg_ctl, postgres) are on this machine, so the
# test run can start a private server of its own (tests/pgserver.py does that, in a temporary
# folder, on a unix socket only). Installs Debian's `postgresql` when missing and when we may.
# PostgreSQL refuses to run as root: when we are root, the server runs as the unprivileged
# `postgres` user the Debian package makes (or `soundscape-pg`, made here, when there is none).
# Never fails the build: without a server the PostgreSQL half of the ledger tests skips and says why.
set -u
find_bin() {
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ] && { echo "$dir"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}
if ! find_bin >/dev/null; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-postgres: cannot install postgresql (needs root and apt-get); the PostgreSQL ledger tests will skip" >&2
    exit 0
  fi
  echo "ensure-postgres: installing postgresql"
  export DEBIAN_FRONTEND=noninteractive
  # Only the programs are wanted: the package's own cluster is never started by the tests.
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends postgresql >/dev/null \
    || { echo "ensure-postgres: apt-get could not install postgresql; the PostgreSQL ledger tests will skip" >&2; exit 0; }
fi
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1 && ! id soundscape-pg >/dev/null 2>&1; then
  useradd --system --no-create-home --shell /usr/sbin/nologin soundscape-pg \
    || echo "ensure-postgres: could not make the unprivileged user soundscape-pg; the PostgreSQL ledger tests will skip" >&2
fi
exit 0
