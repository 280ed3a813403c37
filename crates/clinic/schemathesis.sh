#!/usr/bin/env bash
# Property-based API testing of `thecal serve` from its own OpenAPI description with
# schemathesis (PyPI): starts a server on a fresh SQLite data directory (or the database
# given as $1), signs in as a physician and runs schemathesis's checks for server errors and
# for responses that break the description (status codes, content types, headers, bodies)
# and for undeclared methods (405). Exits non-zero on any failure.
#
# Usage: crates/clinic/schemathesis.sh [DATABASE_URL]   (needs `schemathesis` on PATH or
# in $SCHEMATHESIS; the thecal binary is built first). Env: ST_MAX_EXAMPLES (default 30).
set -euo pipefail
cd "$(dirname "$0")/../.."
ST=${SCHEMATHESIS:-schemathesis}
command -v "$ST" >/dev/null 2>&1 || { echo "notice: schemathesis not found (pip install schemathesis); API property test skipped"; exit 0; }
command -v curl >/dev/null 2>&1 || { echo "notice: curl not found; API property test skipped"; exit 0; }
cargo build --quiet -p thecal
work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
db_args=(--data-dir "$work/data")
[ $# -ge 1 ] && db_args=(--database "$1")
THECAL_ADMIN_PASSWORD="schemathesis administrator" ./target/debug/thecal serve "${db_args[@]}" \
  --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
base="http://127.0.0.1:$port/api/v1"
for _ in $(seq 1 100); do curl -sf "$base/openapi.json" >/dev/null && break; sleep 0.2; done
json() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }
admin_csrf=$(curl -sf -c "$work/admin" -H 'Content-Type: application/json' \
  -d '{"username":"admin","password":"schemathesis administrator"}' "$base/session" | json csrf_token)
curl -sf -b "$work/admin" -H "X-CSRF-Token: $admin_csrf" -H 'Content-Type: application/json' \
  -d '{"username":"dr","password":"schemathesis physician","role":"physician"}' "$base/users" >/dev/null
csrf=$(curl -sf -c "$work/dr" -H 'Content-Type: application/json' \
  -d '{"username":"dr","password":"schemathesis physician"}' "$base/session" | json csrf_token)
token=$(awk '/thecal_session/ {print $7}' "$work/dr")
# Signing out (DELETE /session) would end the run's own session: excluded.
# Run from the scratch directory: schemathesis keeps a cache where it runs.
cd "$work"
"$ST" run "$base/openapi.json" \
  -H "Cookie: thecal_session=$token" -H "X-CSRF-Token: $csrf" \
  --exclude-method DELETE \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,unsupported_method \
  --max-examples "${ST_MAX_EXAMPLES:-30}" --workers 2 --seed 1
