#!/usr/bin/env bash
# Runs examples/flow.ts against a throwaway server (with-server.sh: a temporary SQLite database,
# a fresh tenant, a free loopback port; all removed on exit, pass or fail).
#
#   clients/typescript/run-example.sh          (from anywhere; `make test-client` calls it)
#
# The example imports the package by name, so it runs the build in dist/ as an installed copy
# would be run. Needs the Python virtual environment (`make install`), this folder's
# node_modules (`npm ci`) and dist/ (`npm run build`).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
tsx="$here/node_modules/.bin/tsx"

[ -x "$tsx" ] || { echo "run-example: $tsx is missing: run npm ci in $here" >&2; exit 1; }
[ -f "$here/dist/index.js" ] || { echo "run-example: $here/dist is not built: run npm run build in $here" >&2; exit 1; }

exec "$here/with-server.sh" "$tsx" "$here/examples/flow.ts"
