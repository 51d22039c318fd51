#!/usr/bin/env bash
# Runs the whole test suite: sets up what it needs (virtualenv, requirements, npm packages, Redis,
# and Debian's chromium when run as root), then pytest. Extra arguments go to pytest.
# Uses DATABASE_URL when set (CI sets PostgreSQL), SQLite otherwise.
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "Installing Debian's chromium for the browser tests"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    die "the browser tests need Chromium at /usr/bin/chromium: apt-get install chromium"
  fi
fi

ensure_redis "${REDIS_URL:-redis://127.0.0.1:6379/15}"
say "Running the tests on ${DATABASE_URL:-SQLite}"
python -m pytest "$@"
