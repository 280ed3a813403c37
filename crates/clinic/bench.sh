#!/usr/bin/env bash
# The clinic's benchmark (not a test): a synthetic clinic of BENCH_PATIENTS patients with
# BENCH_VISITS closed refill visits each (10,000 × 100 = 1,000,000 visits by default) on
# SQLite and on PostgreSQL; `thecal serve` (release) on loopback; wrk, a second process on
# the same machine, measures requests per second and p50/p99 latency of
#   calendar  GET  /api/v1/calendar
#   record    GET  /api/v1/patients/{id}       (a random patient; the read is audited)
#   refill    POST /api/v1/implants/{id}/visits, then /aspirate, /fill, /close of each
#             visit opened (every request one step of a refill; 4 requests per refill)
# and, with BENCH_ENDPOINTS naming them, the console's pages (server-rendered HTML, the same
# session):
#   today     GET  /today                      (today's list)
#   patient   GET  /patients/{id}              (a random patient's page: record, timeline,
#                                               and the two plots drawn as SVG)
# and prints one table. The seeded databases are kept in BENCH_DIR and reused by the next
# run (BENCH_RESEED=1 starts afresh).
#
# Usage: crates/clinic/bench.sh [sqlite|postgres|both]      (default both)
# Env: BENCH_PATIENTS (10000), BENCH_VISITS (100), BENCH_DURATION (15s),
#      BENCH_CONNECTIONS (16), BENCH_THREADS (1), BENCH_DIR (target/clinic-bench),
#      BENCH_PG (postgres://postgres@127.0.0.1:5432, trust authentication), BENCH_PG_DB
#      (thecal_bench), BENCH_RESEED (0), BENCH_ENDPOINTS ("calendar record refill"; any of
#      calendar record refill today patient, e.g. "today patient" for the console's pages),
#      BENCH_BIN (a thecal built in release already; default: build it).
# Needs wrk (Debian: apt-get install wrk), curl, python3; psql for PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/../.."
which=${1:-both}
patients=${BENCH_PATIENTS:-10000}
visits=${BENCH_VISITS:-100}
duration=${BENCH_DURATION:-15s}
conns=${BENCH_CONNECTIONS:-16}
threads=${BENCH_THREADS:-1}
dir=${BENCH_DIR:-target/clinic-bench}
endpoints=${BENCH_ENDPOINTS:-calendar record refill}
for ep in $endpoints; do
  case "$ep" in calendar | record | refill | today | patient) ;; *)
    echo "bench.sh: BENCH_ENDPOINTS: unknown endpoint $ep (allowed: calendar record refill today patient)" >&2
    exit 2
    ;;
  esac
done
pg=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
pgdb=${BENCH_PG_DB:-thecal_bench}
case "$which" in sqlite | postgres | both) ;; *)
  echo "usage: $0 [sqlite|postgres|both]" >&2
  exit 2
  ;;
esac
for tool in wrk curl python3; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "bench.sh: $tool not found (Debian: apt-get install $tool)" >&2
    exit 1
  }
done
if [ -n "${BENCH_BIN:-}" ]; then
  bin=$(cd "$(dirname "$BENCH_BIN")" && pwd)/$(basename "$BENCH_BIN")
  [ -x "$bin" ] || {
    echo "bench.sh: BENCH_BIN: $BENCH_BIN is not an executable thecal" >&2
    exit 2
  }
else
  cargo build --release --quiet -p thecal
  bin=$PWD/target/release/thecal
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
lua=$(mktemp -d)
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$lua"
}
trap cleanup EXIT

# Each script writes "requests seconds p50_ms p99_ms non2xx socket_errors" to $BENCH_OUT.
done_lua='
done = function(summary, latency, requests)
  local f = assert(io.open(os.getenv("BENCH_OUT"), "w"))
  local e = summary.errors
  f:write(string.format("%d %.3f %.2f %.2f %d %d\n", summary.requests,
    summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
  f:close()
end'
cat >"$lua/calendar.lua" <<EOF
request = function() return wrk.format("GET", "/api/v1/calendar") end
$done_lua
EOF
cat >"$lua/record.lua" <<EOF
local n = tonumber(os.getenv("BENCH_PATIENTS"))
init = function() math.randomseed(os.time() + (tonumber(tid) or 0)) end
request = function()
  return wrk.format("GET", "/api/v1/patients/" .. math.random(1, n))
end
$done_lua
EOF
cat >"$lua/today.lua" <<EOF
request = function() return wrk.format("GET", "/today") end
$done_lua
EOF
cat >"$lua/patient.lua" <<EOF
local n = tonumber(os.getenv("BENCH_PATIENTS"))
init = function() math.randomseed(os.time() + (tonumber(tid) or 0)) end
request = function()
  return wrk.format("GET", "/patients/" .. math.random(1, n))
end
$done_lua
EOF
cat >"$lua/refill.lua" <<EOF
-- Each thread opens visits on its own implants (first, first + threads, ...) and walks
-- each visit through aspirate (the expected residual), fill and close; the next step of
-- a visit is queued when the previous step's answer arrives.
local counter = 0
setup = function(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
local queue, nxt, stride = {}, 0, 1
init = function()
  nxt = tonumber(os.getenv("BENCH_FIRST_IMPLANT")) + tid
  stride = tonumber(os.getenv("BENCH_THREADS"))
end
request = function()
  local job = table.remove(queue, 1)
  if job then return job end
  local id = nxt
  nxt = nxt + stride
  return wrk.format("POST", "/api/v1/implants/" .. id .. "/visits", nil, "")
end
response = function(status, headers, body)
  if status < 200 or status > 299 then return end
  local id = body:match('^{"id":(%d+)')
  local step = body:match('"step":"(%a+)"')
  if not id or not step then return end
  local path = "/api/v1/visits/" .. id
  if step == "opened" then
    local nl = body:match('"expected_residual_nl":(%d+)')
    table.insert(queue, wrk.format("POST", path .. "/aspirate", nil,
      '{"aspirated":"' .. nl .. ' nL"}'))
  elseif step == "aspirated" then
    table.insert(queue, wrk.format("POST", path .. "/fill", nil,
      '{"volume_added":"20 mL","concentration":"2000 mcg/mL","lot":"BENCH-1","expiry":"2099-12-31"}'))
  elseif step == "filled" then
    table.insert(queue, wrk.format("POST", path .. "/close", nil, ""))
  end
end
$done_lua
EOF

json() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }
results=()

run_db() {
  local db=$1 url
  if [ "$db" = sqlite ]; then
    [ "${BENCH_RESEED:-0}" = 1 ] && rm -rf "$dir/sqlite"
    mkdir -p "$dir/sqlite"
    url="sqlite://$dir/sqlite/clinic.db"
  else
    command -v psql >/dev/null 2>&1 || {
      echo "bench.sh: psql not found" >&2
      exit 1
    }
    [ "${BENCH_RESEED:-0}" = 1 ] && psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $pgdb" >/dev/null
    psql -qtA "$pg/postgres" -c "SELECT 1 FROM pg_database WHERE datname = '$pgdb'" | grep -q 1 ||
      psql -q "$pg/postgres" -c "CREATE DATABASE $pgdb" >/dev/null
    url="$pg/$pgdb"
  fi
  local port=$((20000 + RANDOM % 20000))
  local base="http://127.0.0.1:$port/api/v1"
  echo "== $db: seeding (if empty) and starting the server" >&2
  THECAL_ADMIN_PASSWORD="bench administrator" "$bin" serve --database "$url" \
    --listen "127.0.0.1:$port" --seed-bench "$patients" --seed-visits "$visits" \
    >"$dir/$db.server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 36000); do
    curl -sf "$base/openapi.json" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || {
      cat "$dir/$db.server.log" >&2
      exit 1
    }
    sleep 0.1
  done
  grep -h "seeded" "$dir/$db.server.log" >&2 || true
  local admin_csrf csrf token
  admin_csrf=$(curl -sf -c "$lua/admin" -H 'Content-Type: application/json' \
    -d '{"username":"admin","password":"bench administrator"}' "$base/session" | json csrf_token)
  curl -s -o /dev/null -b "$lua/admin" -H "X-CSRF-Token: $admin_csrf" -H 'Content-Type: application/json' \
    -d '{"username":"bench-nurse","password":"bench nurse password","role":"nurse"}' "$base/users"
  csrf=$(curl -sf -c "$lua/nurse" -H 'Content-Type: application/json' \
    -d '{"username":"bench-nurse","password":"bench nurse password"}' "$base/session" | json csrf_token)
  token=$(awk '/thecal_session/ {print $7}' "$lua/nurse")
  # The refill run takes implants not used by an earlier run on this database.
  local first
  first=$(cat "$dir/$db.next-implant" 2>/dev/null || echo 1)
  # One request each first: the measured runs see a started service (the calendar's due
  # dates computed once, connections open).
  curl -sf -o /dev/null -b "$lua/nurse" "$base/calendar"
  curl -sf -o /dev/null -b "$lua/nurse" "$base/patients/1"
  for ep in $endpoints; do
    echo "== $db: $ep: wrk -t$threads -c$conns -d$duration --latency" >&2
    BENCH_OUT="$lua/$ep.out" BENCH_PATIENTS=$patients BENCH_FIRST_IMPLANT=$first \
      BENCH_THREADS=$threads wrk -t"$threads" -c"$conns" -d"$duration" --latency \
      -s "$lua/$ep.lua" -H "Cookie: thecal_session=$token" -H "X-CSRF-Token: $csrf" \
      -H 'Content-Type: application/json' "http://127.0.0.1:$port" >"$dir/$db.$ep.wrk.txt"
    read -r n secs p50 p99 bad sock <"$lua/$ep.out"
    # The machine's 1-minute load average at the run's end (other work sharing it).
    results+=("$(printf '%-9s %-9s %9.0f %9s %9s %9s %9s %6s' "$db" "$ep" \
      "$(python3 -c "print($n / $secs)")" "$p50" "$p99" "$bad" "$sock" \
      "$(cut -d' ' -f1 /proc/loadavg)")")
    # Each refill takes 4 requests; the connections leave at most one visit each open.
    # Past the last implant, start again from the first (their visits are closed).
    if [ "$ep" = refill ]; then
      local next=$((first + n / 4 + conns + 1))
      [ $((next + n / 4 + conns)) -gt "$patients" ] && next=1
      echo "$next" >"$dir/$db.next-implant"
    fi
  done
  kill "$server"
  wait "$server" 2>/dev/null || true
  server=
}

[ "$which" != postgres ] && run_db sqlite
[ "$which" != sqlite ] && run_db postgres
echo
echo "patients $patients, visits $((patients * visits)); wrk -t$threads -c$conns -d$duration; $(nproc) cores"
printf '%-9s %-9s %9s %9s %9s %9s %9s %6s\n' database endpoint 'req/s' 'p50 ms' 'p99 ms' non-2xx 'sock err' load1
printf '%s\n' "${results[@]}"
