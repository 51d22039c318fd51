#!/usr/bin/env bash
# Sets everything up (virtualenv, requirements, migrations, demo data) and starts the whole product:
# the web server (daphne: HTTP and websockets), a Celery worker and Celery beat. Ctrl-C stops all.
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"

HOST="${CDP_HOST:-127.0.0.1}"
PORT="${CDP_PORT:-8000}"
ensure_redis "${REDIS_URL:-redis://127.0.0.1:6379/0}"

say "Migrating the database (${DATABASE_URL:-SQLite in var/cdp.sqlite3})"
python manage.py migrate --no-input -v 0
login="$(python manage.py setup_demo --json)"

pids=()
stop() { trap - INT TERM EXIT; kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop INT TERM EXIT

say "Starting the web server on http://$HOST:$PORT"
daphne -b "$HOST" -p "$PORT" cdp.asgi:application >var/web.log 2>&1 &
pids+=($!)
say "Starting a Celery worker and beat (logs in var/worker.log)"
celery -A cdp worker --beat --schedule var/celerybeat-schedule -Q cdp,delivery --pool threads --concurrency 8 --loglevel INFO >var/worker.log 2>&1 &
pids+=($!)

for _ in $(seq 100); do
  curl -fs "http://$HOST:$PORT/healthz" >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat var/web.log; die "the web server did not start"; }
  sleep 0.2
done
python manage.py send_demo_events --url "http://$HOST:$PORT" || true

python - "$login" "$HOST" "$PORT" <<'PY'
import json, sys
info, host, port = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
password = info["password"] or "(set when first printed; reset: python manage.py setup_demo --password NEW)"
print(f"""
  CDP is running.
    Dashboard:  http://{host}:{port}/   (Django admin: http://{host}:{port}/admin/)
    Login:      {info['username']} / {password}
    Demo source write key: {info['write_key']}
    Send an event:
      curl http://{host}:{port}/v1/track -u '{info['write_key']}:' -d '{{"userId": "u1", "event": "Signed Up"}}'
  Logs: var/web.log, var/worker.log. Press Ctrl-C to stop.
""")
PY
wait -n "${pids[@]}"
die "a process stopped; see var/web.log and var/worker.log"
