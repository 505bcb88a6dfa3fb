#!/usr/bin/env bash
# The client as an app gets it: `npm pack` (whose prepack builds dist/ with tsup), then the
# tarball installed into a scratch app (its own package.json; nothing of this folder's
# node_modules) and used there with no bundler and no TypeScript transform:
#   1. the tarball holds exactly package.json, README.md and dist/ (ESM, CommonJS, declarations);
#   2. tsc (strict) compiles an ES module and a CommonJS module of the app against the
#      tarball's declarations (package-test/*.mts, *.cts);
#   3. esbuild bundles it for a browser;
#   4. plain Node imports and requires it and, against a throwaway server (with-server.sh),
#      gets a token and makes calls through each build (package-test/run.mjs).
#
#   clients/typescript/test-package.sh          (from anywhere; `make test-client` calls it)
#
# Needs the Python virtual environment (`make install`) and this folder's node_modules (`npm ci`).
# dist/ is left built, as `npm run build` leaves it.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
tsc="$here/node_modules/.bin/tsc"
[ -x "$tsc" ] || { echo "test-package: $tsc is missing: run npm ci in $here" >&2; exit 1; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/homework-package.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# 1. Pack, and look inside.
mkdir "$tmp/pack"
(cd "$here" && npm pack --pack-destination "$tmp/pack" --no-audit --no-fund >"$tmp/pack.log" 2>&1) ||
  { cat "$tmp/pack.log" >&2; echo "test-package: npm pack failed" >&2; exit 1; }
tarballs=("$tmp"/pack/*.tgz)
[ "${#tarballs[@]}" -eq 1 ] && [ -f "${tarballs[0]}" ] ||
  { echo "test-package: npm pack made no tarball (or several)" >&2; exit 1; }
tarball="${tarballs[0]}"
expected="package/README.md
package/dist/index.cjs
package/dist/index.d.cts
package/dist/index.d.ts
package/dist/index.js
package/package.json"
if ! diff -u <(echo "$expected") <(tar -tzf "$tarball" | LC_ALL=C sort) >"$tmp/contents.diff"; then
  cat "$tmp/contents.diff" >&2
  echo "test-package: the tarball does not hold what it should (- expected, + packed)" >&2
  exit 1
fi
echo "test-package: $(basename "$tarball") ($(du -k "$tarball" | cut -f1) kB) holds package.json, README.md and dist/"

# 2. A scratch app installs it from the tarball, as README.md says an app does.
app="$tmp/app"
mkdir "$app"
echo '{"name": "scratch-app", "version": "0.0.0", "private": true}' >"$app/package.json"
cp "$here"/package-test/* "$app/"
(cd "$app" && npm install "$tarball" --prefer-offline --no-audit --no-fund >"$tmp/install.log" 2>&1) ||
  { cat "$tmp/install.log" >&2; echo "test-package: npm install of the tarball failed" >&2; exit 1; }
for dev in tsup typescript tsx openapi-typescript; do
  [ ! -e "$app/node_modules/$dev" ] || { echo "test-package: the install brought $dev, a devDependency" >&2; exit 1; }
done

"$tsc" -p "$app" --listFiles >"$tmp/tsc.log" 2>&1 || { grep -v "^/" "$tmp/tsc.log" >&2; echo "test-package: tsc failed in the scratch app" >&2; exit 1; }
for declarations in dist/index.d.ts dist/index.d.cts; do
  grep -q "node_modules/@homework/api-client/$declarations\$" "$tmp/tsc.log" ||
    { echo "test-package: tsc did not read $declarations from the tarball" >&2; exit 1; }
done
echo "test-package: tsc (strict) compiles an ES module and a CommonJS module against the tarball's declarations"

# A browser bundler (esbuild, which Vite uses; it comes with tsup and tsx) takes the ES module
# build, and finds no Node built-in in it.
"$here/node_modules/.bin/esbuild" "$app/esm.mts" --bundle --platform=browser --format=esm \
  --log-level=error --outfile="$tmp/browser.js" ||
  { echo "test-package: the package does not bundle for a browser" >&2; exit 1; }
echo "test-package: it bundles for a browser ($(du -k "$tmp/browser.js" | cut -f1) kB with openapi-fetch)"

# 4. Plain Node, against a real server.
"$here/with-server.sh" node "$app/run.mjs"
echo "test-package: OK"
