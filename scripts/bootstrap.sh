# Shared set-up for scripts/start.sh and scripts/test.sh: sourced, not run.
# Creates .venv, installs requirements.txt and package.json when they changed, finds Redis.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
mkdir -p var

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf '\033[31mError: %s\033[0m\n' "$*" >&2; exit 1; }

PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
  || die "Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)."

if [ ! -x .venv/bin/python ]; then
  say "Creating the virtualenv in .venv"
  "$PYTHON" -m venv .venv || die "could not create .venv (on Debian/Ubuntu: apt-get install python3-venv)"
fi
# shellcheck disable=SC1091
. .venv/bin/activate

req_hash="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ "$(cat .venv/.requirements.sha 2>/dev/null)" != "$req_hash" ]; then
  say "Installing Python requirements"
  python -m pip install --quiet --upgrade pip
  python -m pip install --quiet -r requirements.txt
  echo "$req_hash" > .venv/.requirements.sha
fi

pkg_hash="$(cat package.json package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1)"
if [ "$(cat node_modules/.package.sha 2>/dev/null)" != "$pkg_hash" ]; then
  if command -v npm >/dev/null 2>&1; then
    say "Installing analytics.js and the Node client (npm)"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$pkg_hash" > node_modules/.package.sha
  else
    printf 'Warning: npm is not installed; browsers cannot load analytics.js from this server until you run `npm ci`.\n' >&2
  fi
fi

redis_ping() { python - "$1" <<'PY' 2>/dev/null
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1).ping()
PY
}

# ensure_redis URL: use the Redis at URL, or start redis-server for it; exports REDIS_URL.
ensure_redis() {
  local url="$1"
  if redis_ping "$url"; then export REDIS_URL="$url"; return 0; fi
  if command -v redis-server >/dev/null 2>&1; then
    local port=6379
    [[ "$url" =~ :([0-9]+)(/|$) ]] && port="${BASH_REMATCH[1]}"
    say "Starting redis-server on 127.0.0.1:$port (data kept in var/redis)"
    mkdir -p var/redis
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --dir "$ROOT/var/redis" \
      --logfile "$ROOT/var/redis/redis.log" --save "" --appendonly yes >/dev/null
    for _ in $(seq 50); do redis_ping "$url" && { export REDIS_URL="$url"; return 0; }; sleep 0.1; done
  fi
  die "no Redis at $url and redis-server is not installed: install it (apt-get install redis-server) or set REDIS_URL=redis://host:port/0"
}
