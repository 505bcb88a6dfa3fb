#!/usr/bin/env bash
# Runs a command against a real server: a temporary SQLite database, a fresh tenant, the API on
# a free loopback port; everything is stopped and removed on exit, pass or fail.
#
#   clients/typescript/with-server.sh COMMAND [ARG...]
#
# The command gets HOMEWORK_URL, HOMEWORK_CLIENT_ID and HOMEWORK_CLIENT_SECRET (the tenant's
# OAuth client) in its environment, and runs in the temporary folder: give it absolute paths.
# run-example.sh (examples/flow.ts) and test-package.sh (the packed tarball) use it.
#
# Needs the Python virtual environment (`make install`).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${VENV:-$repo/.venv}"
homework="$venv/bin/homework"
python="$venv/bin/python"

[ "$#" -gt 0 ] || { echo "usage: with-server.sh COMMAND [ARG...]" >&2; exit 2; }
[ -x "$homework" ] || { echo "with-server: $homework is missing: run make install" >&2; exit 1; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/homework-client.XXXXXX")"
server_pid=""
cleanup() {
  status=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -s "$tmp/server.log" ]; then
    echo "with-server: the server's last log lines:" >&2
    tail -n 20 "$tmp/server.log" >&2
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Everything the server keeps lives in $tmp, and a developer's own .env is not read: the
# commands run from $tmp and every setting that matters is given here.
export HOMEWORK_ENV=development
export HOMEWORK_DATABASE_URL="sqlite+aiosqlite:///$tmp/client.db"
export HOMEWORK_DEV_SIGNING_KEY_PATH="$tmp/signing-keys.json"
export HOMEWORK_LOG_LEVEL=WARNING
cd "$tmp"

port="$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
url="http://127.0.0.1:$port"

"$homework" migrate upgrade >/dev/null
"$homework" tenants create "Client example" >"$tmp/tenant.json"
read -r client_id client_secret < <(
  "$python" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d["client_id"], d["client_secret"])' "$tmp/tenant.json"
)

"$homework" serve --no-migrate --port "$port" >"$tmp/server.log" 2>&1 &
server_pid=$!

# Wait for /healthz (30 s at most), giving up at once if the server died.
"$python" - "$url/healthz" "$server_pid" <<'PY'
import os, sys, time, urllib.request

url, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 30
while True:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            if response.status == 200:
                break
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("with-server: the server exited before answering /healthz")
    if time.monotonic() > deadline:
        sys.exit(f"with-server: {url} did not answer 200 within 30 s")
    time.sleep(0.2)
PY

echo "with-server: server up at $url; running $(basename "$1")"
HOMEWORK_URL="$url" HOMEWORK_CLIENT_ID="$client_id" HOMEWORK_CLIENT_SECRET="$client_secret" "$@"
