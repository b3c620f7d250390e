#!/usr/bin/env bash
# HTTP load benchmark: a bare axum handler against the hookdock receiver (GitHub verify +
# durable SQLite enqueue with synchronous=FULL), driven by the same wrk script on the same
# machine in one run. Prints requests/s, p99 latency, the ratio, and the stored-row count
# against the 2xx count (which must match).
#
#   benches/load/run.sh                  # defaults below
#   DURATION=20 ROUNDS=3 benches/load/run.sh
#   PERF=1 benches/load/run.sh           # also profile the receiver with perf
#   NULL_QUEUE=1 benches/load/run.sh     # also verify + intake over a queue storing nothing,
#                                        # answered at once and after a writer-like hand-off
#   BACKEND=both benches/load/run.sh     # the receiver on SQLite and on PostgreSQL
#   LIMITS=on benches/load/run.sh        # only with the edge timeouts and limits on
#
# BACKEND=sqlite|postgres|both (default sqlite) picks the receiver's queue. PostgreSQL runs
# the same receiver example with HOOKDOCK_DATABASE_URL set (built with --features postgres),
# at HOOKDOCK_BENCH_POSTGRES_URL, else HOOKDOCK_TEST_POSTGRES_URL; each measurement gets a
# fresh schema (HOOKDOCK_DATABASE_SCHEMA), counted with psql and dropped afterwards. A
# throwaway local server:
#
#   eval "$(scripts/postgres-test-server.sh start)"
#   BACKEND=both benches/load/run.sh
#   scripts/postgres-test-server.sh stop "$HOOKDOCK_POSTGRES_TEST_DIR"
#
# LIMITS=on|off|both (default both) measures the receiver with its edge timeouts and limits
# on (hookdock::serve: header/idle and body timeouts, connection and in-flight limits) and
# off (HOOKDOCK_LIMITS=off: axum::serve and no body timeout, as before they existed), each
# against the same bare-handler measurement of the round, and prints on/off per round.
# (wrk's 256 connections stay below the default limits: 1024 connections, 512 in flight.)
#
# On PostgreSQL the server CPU per request includes the PostgreSQL server's processes
# ("postgres"), which run on the same machine.
#
# Needs: wrk (Debian: apt-get install -y wrk), openssl, GNU time (/usr/bin/time), sqlite3 or
# python3; perf for PERF=1; psql for BACKEND=postgres (Debian: apt-get install -y linux-perf).
#
# Each round measures the bare handler, then the receiver on a fresh database, with the same
# wrk script (benches/load/github.lua: unique X-GitHub-Delivery per request, no delivery left
# in flight at the end). Requests/s count 2xx answers over DURATION. The CPU lines give the
# CPU time per request of each process (by thread: tokio workers, SQLite threads) and of wrk,
# which unlike requests/s does not depend on what else the machine is running.
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${DURATION:-10}        # seconds of load per measurement
CONNECTIONS=${CONNECTIONS:-256} # wrk connections (deliveries in flight)
THREADS=${THREADS:-2}           # wrk threads
ROUNDS=${ROUNDS:-3}             # bare/receiver pairs, alternating
PERF=${PERF:-0}
NULL_QUEUE=${NULL_QUEUE:-0}
# The hand-off's CPU per event and per batch, in microseconds: by default what the SQLite
# writer spent on this machine (a fit of its CPU time against its batch sizes).
NULL_WRITER_US=${NULL_WRITER_US:-5.9,144}
IDS=${IDS:-both}                # delivery ids: random (UUIDs, as providers send), sequential, both
BACKEND=${BACKEND:-sqlite}      # the receiver's queue: sqlite, postgres, both
LIMITS=${LIMITS:-both}          # the receiver's edge timeouts and limits: on, off, both
DRAIN=3                         # seconds after the load for the last answers to arrive

case "$IDS" in
  random | sequential) styles=$IDS ;;
  both) styles="random sequential" ;;
  *) echo "IDS must be random, sequential or both, not $IDS" >&2; exit 2 ;;
esac

case "$LIMITS" in
  on | off) limit_modes=$LIMITS ;;
  both) limit_modes="on off" ;;
  *) echo "LIMITS must be on, off or both, not $LIMITS" >&2; exit 2 ;;
esac

case "$BACKEND" in
  sqlite | postgres) backends=$BACKEND ;;
  both) backends="sqlite postgres" ;;
  *) echo "BACKEND must be sqlite, postgres or both, not $BACKEND" >&2; exit 2 ;;
esac
features=(--features admin)
pg_url=""
if [[ "$backends" == *postgres* ]]; then
  pg_url=${HOOKDOCK_BENCH_POSTGRES_URL:-${HOOKDOCK_TEST_POSTGRES_URL:-}}
  if [[ -z "$pg_url" ]]; then
    echo "BACKEND=$BACKEND needs HOOKDOCK_BENCH_POSTGRES_URL or HOOKDOCK_TEST_POSTGRES_URL" \
      '(a throwaway server: eval "$(scripts/postgres-test-server.sh start)")' >&2
    exit 2
  fi
  command -v psql >/dev/null || { echo "BACKEND=$BACKEND needs psql" >&2; exit 2; }
  features=(--features admin,postgres)
fi

for tool in wrk openssl /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "run.sh needs $tool" >&2; exit 2; }
done

echo "== building (release)"
cargo build --release --quiet "${features[@]}" \
  --example receiver --example load_bare --example load_null_queue
target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null ||
  echo target)
receiver_bin="$target_dir/release/examples/receiver"
bare_bin="$target_dir/release/examples/load_bare"
null_bin="$target_dir/release/examples/load_null_queue"

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

secret="hookdock-bench-secret"
body_file="$work/body.json"
# A 994-byte GitHub push payload.
cat >"$body_file" <<'JSON'
{"ref":"refs/heads/main","before":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","after":"59b20b8d5c6ff8d09518454d4dd8b7a30f095ab5","repository":{"id":186853002,"node_id":"MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=","name":"hello-world","full_name":"octocat/hello-world","private":false,"owner":{"name":"octocat","email":"octocat@github.com","login":"octocat","id":21031067},"html_url":"https://github.com/octocat/hello-world","default_branch":"main"},"pusher":{"name":"octocat","email":"octocat@github.com"},"sender":{"login":"octocat","id":21031067,"type":"User","site_admin":false},"head_commit":{"id":"59b20b8d5c6ff8d09518454d4dd8b7a30f095ab5","tree_id":"f9d2a07e9488b91af2641b26b9407fe22a451433","distinct":true,"message":"Update README.md","timestamp":"2026-11-24T14:00:00Z","url":"https://github.com/octocat/hello-world/commit/59b20b8d5c6ff8d09518454d4dd8b7a30f095ab5","author":{"name":"The Octocat","email":"octocat@github.com","username":"octocat"},"added":[],"removed":[],"modified":["README.md"]}}
JSON
printf '%s' "$(cat "$body_file")" >"$body_file.tmp" && mv "$body_file.tmp" "$body_file"
signature="sha256=$(openssl dgst -sha256 -hmac "$secret" -r "$body_file" | cut -d' ' -f1)"

# start_server LOG CMD...: starts a server printing "listening on http://ADDR"; sets
# server_pid and server_addr.
start_server() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 200); do
    server_addr=$(grep -o 'listening on http://[0-9.:]*' "$log" 2>/dev/null | head -1 | sed 's|.*http://||') || true
    [[ -n "$server_addr" ]] && return 0
    kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.05
  done
  echo "server did not start" >&2
  cat "$log" >&2
  exit 1
}

stop_server() {
  kill -TERM "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

# cpu_by_thread PID: CPU ticks used so far by each thread group of PID ("comm=ticks ...").
cpu_by_thread() {
  cat /proc/"$1"/task/*/stat 2>/dev/null |
    awk '{ c = substr($0, index($0, "(") + 1); c = substr(c, 1, index(c, ")") - 1);
           r = substr($0, index($0, ") ") + 2); split(r, f, " "); t[c] += f[12] + f[13] }
         END { for (k in t) printf "%s=%d ", k, t[k] }'
}

# pg_cpu: CPU ticks used so far by every running PostgreSQL server process (0 when the
# receiver is on SQLite).
pg_cpu() {
  if [[ "$current_backend" != postgres ]]; then echo 0; return; fi
  local pids
  pids=$(pgrep -x postgres || true)
  [[ -z "$pids" ]] && { echo 0; return; }
  for p in $pids; do cat /proc/"$p"/stat 2>/dev/null || true; done |
    awk '{ r = substr($0, index($0, ") ") + 2); split(r, f, " "); t += f[12] + f[13] } END { print t + 0 }'
}
current_backend=sqlite

# ctx_switches PID: context switches (voluntary and not) of every thread of PID so far.
ctx_switches() {
  cat /proc/"$1"/task/*/status 2>/dev/null |
    awk '/^(voluntary|nonvoluntary)_ctxt_switches:/ { n += $2 } END { print n + 0 }'
}

# load RUN_ID STYLE: drives $server_addr; prints the RESULT line, then the server's CPU per
# thread group over the run and wrk's own CPU, in ticks.
load() {
  local run_id=$1 style=$2 before after wrk_out cs_before cs_after pg_before pg_after
  before=$(cpu_by_thread "$server_pid")
  pg_before=$(pg_cpu)
  cs_before=$(ctx_switches "$server_pid")
  wrk_out=$(/usr/bin/time -f 'WRKCPU %U %S %w %c' \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$((DURATION + DRAIN))s" --timeout 60s \
    -s benches/load/github.lua "http://$server_addr" \
    -- "$DURATION" "$run_id" "$signature" /webhooks/github "$body_file" "$style" 2>&1)
  after=$(cpu_by_thread "$server_pid")
  pg_after=$(pg_cpu)
  cs_after=$(ctx_switches "$server_pid")
  grep '^RESULT' <<<"$wrk_out" | tr '\n' ' '
  printf 'server_cs=%d ' "$((cs_after - cs_before))"
  grep '^WRKCPU' <<<"$wrk_out" | awk '{ printf "wrk_cs=%d ", $4 + $5 }'
  awk -v b="$before" -v a="$after" 'BEGIN {
      n = split(b, x, " "); for (i = 1; i <= n; i++) { split(x[i], kv, "="); B[kv[1]] = kv[2] }
      n = split(a, x, " "); for (i = 1; i <= n; i++) { split(x[i], kv, "="); printf "cpu[%s]=%d ", kv[1], kv[2] - B[kv[1]] }
    }'
  if [[ "$current_backend" == postgres ]]; then printf 'cpu[postgres]=%d ' "$((pg_after - pg_before))"; fi
  grep '^WRKCPU' <<<"$wrk_out" | awk -v hz="$(getconf CLK_TCK)" '{ printf "cpu[wrk]=%d\n", ($2 + $3) * hz }'
}

# cpu_report LINE REQUESTS: microseconds of CPU per request, by thread group.
cpu_report() {
  awk -v line="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN {
      m = split(line, x, " "); total = 0; out = ""
      for (i = 1; i <= m; i++) if (x[i] ~ /^cpu\[/) {
        name = x[i]; sub(/^cpu\[/, "", name); v = name; sub(/\].*/, "", name); sub(/.*=/, "", v)
        us = v * 1e6 / hz / n
        if (name != "wrk") { total += us; out = out sprintf(" %s %.1f", name, us) } else wrk = us
      }
      printf "server %.1f us (%s ), wrk %.1f us", total, substr(out, 2), wrk
    }'
}

# server_cpu LINE REQUESTS / wrk_cpu LINE REQUESTS: microseconds per request.
server_cpu() { cpu_report "$1" "$2" | sed 's/^server \([0-9.]*\).*/\1/'; }
wrk_cpu() { cpu_report "$1" "$2" | sed 's/.*wrk \([0-9.]*\) us$/\1/'; }

field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<" $2"; }

count_rows() {
  local db=$1
  if [[ "$current_backend" == postgres ]]; then
    psql "$pg_url" -Atqc "SELECT count(*) FROM $db.hookdock_events WHERE source = 'github'"
  elif command -v sqlite3 >/dev/null; then
    sqlite3 "$db" "SELECT count(*) FROM hookdock_events WHERE source = 'github'"
  else
    python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT count(*) FROM hookdock_events WHERE source = 'github'\").fetchone()[0])" "$db"
  fi
}

printf '== %s s per measurement, wrk -t%s -c%s, %s rounds, ids: %s, receiver on: %s, limits: %s, body %s bytes, %s cores\n' \
  "$DURATION" "$THREADS" "$CONNECTIONS" "$ROUNDS" "$styles" "$backends" "$limit_modes" "$(wc -c <"$body_file")" "$(nproc)"

status=0
declare -A ratios cpu_ratios recv_cpus bare_cpus recv_p99s bare_p99s on_off_rps on_off_cpu

# p99/p50 fields in ms.
ms() { awk -v u="$(field "$1" "$2")" 'BEGIN { printf "%.2f", u / 1000 }'; }

# pair STYLE ROUND BACKEND: the bare handler, then the receiver on a fresh database of
# BACKEND for each LIMITS mode, all driven with STYLE delivery ids; prints the figures and
# records them for the summary.
pair() {
  local style=$1 round=$2 backend=$3 mode
  local -A mode_rps mode_cpu
  current_backend=sqlite
  start_server "$work/bare.log" "$bare_bin"
  bare=$(load "bare-$round" "$style")
  stop_server
  bare_2xx=$(($(field completed "$bare") - $(field non2xx "$bare")))
  bare_rps=$(awk -v n="$bare_2xx" -v s="$DURATION" 'BEGIN { printf "%.0f", n / s }')
  for mode in $limit_modes; do
    receiver_run "$style" "$round" "$backend" "$mode"
    mode_rps[$mode]=$recv_rps
    mode_cpu[$mode]=$(server_cpu "$recv" "$(field completed "$recv")")
  done
  if [[ "$limit_modes" == "on off" ]]; then
    local pair_key="$style ids, receiver on $backend"
    local rps_ratio cpu_ratio_on_off
    rps_ratio=$(awk -v a="${mode_rps[on]}" -v b="${mode_rps[off]}" 'BEGIN { printf "%.3f", a / b }')
    cpu_ratio_on_off=$(awk -v a="${mode_cpu[on]}" -v b="${mode_cpu[off]}" 'BEGIN { printf "%.3f", a / b }')
    printf '   limits on/off: req/s %s, server CPU per request %s\n' "$rps_ratio" "$cpu_ratio_on_off"
    on_off_rps[$pair_key]+="$rps_ratio "
    on_off_cpu[$pair_key]+="$cpu_ratio_on_off "
  fi
}

# receiver_run STYLE ROUND BACKEND MODE: the receiver with HOOKDOCK_LIMITS=MODE, against the
# round's bare measurement ($bare, $bare_rps); sets $recv and $recv_rps.
receiver_run() {
  local style=$1 round=$2 backend=$3 mode=$4 key="$1 ids, receiver on $3, limits $4" schema="" recv_2xx db stored ratio match
  local perf_pid="" cpu_ratio bare_n recv_n

  # The receiver alone (HOOKDOCK_WORKER=off): this measures intake, and every stored row
  # stays in the table to be counted.
  current_backend=$backend
  db="$work/bench-$style-$round-$mode.db"
  local storage=(HOOKDOCK_DB="$db")
  if [[ "$backend" == postgres ]]; then
    schema="hookdock_load_${style}_${round}_$mode"
    db=$schema
    psql "$pg_url" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1
    storage=(HOOKDOCK_DATABASE_URL="$pg_url" HOOKDOCK_DATABASE_SCHEMA="$schema")
  fi
  start_server "$work/receiver.log" env RUST_LOG=warn "${storage[@]}" HOOKDOCK_WORKER=off \
    HOOKDOCK_LIMITS="$mode" HOOKDOCK_GITHUB_SECRET="$secret" "$receiver_bin"
  if [[ "$PERF" == 1 ]]; then
    perf record -F 999 -g -p "$server_pid" -o "$work/perf-$style-$round-$mode.data" -- sleep "$((DURATION - 1))" \
      >"$work/perf-record.log" 2>&1 &
    perf_pid=$!
  fi
  recv=$(load "receiver-$round" "$style")
  if [[ -n "$perf_pid" ]]; then wait "$perf_pid" || true; fi
  stop_server
  recv_2xx=$(($(field completed "$recv") - $(field non2xx "$recv")))
  recv_rps=$(awk -v n="$recv_2xx" -v s="$DURATION" 'BEGIN { printf "%.0f", n / s }')
  stored=$(count_rows "$db" 2>/dev/null) || stored="(no table)"
  if [[ -n "$schema" ]]; then
    psql "$pg_url" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  fi

  ratio=$(awk -v a="$recv_rps" -v b="$bare_rps" 'BEGIN { printf "%.3f", a / b }')
  match="match"
  if [[ "$stored" != "$recv_2xx" ]]; then match="MISMATCH"; status=1; fi
  echo "-- round $round, $key"
  printf '   bare handler: %8s req/s  p50 %6s ms  p99 %6s ms  (%s answered, %s non-2xx, %s sent; this round'"'"'s)\n' \
    "$bare_rps" "$(ms p50_us "$bare")" "$(ms p99_us "$bare")" \
    "$(field completed "$bare")" "$(field non2xx "$bare")" "$(field sent "$bare")"
  printf '   receiver:     %8s req/s  p50 %6s ms  p99 %6s ms  (%s answered, %s non-2xx, %s sent)\n' \
    "$recv_rps" "$(ms p50_us "$recv")" "$(ms p99_us "$recv")" \
    "$(field completed "$recv")" "$(field non2xx "$recv")" "$(field sent "$recv")"
  printf '   ratio receiver/bare: %s   stored rows %s vs 2xx %s: %s\n' \
    "$ratio" "$stored" "$recv_2xx" "$match"
  # The SQLite receiver reports its group commits when it stops.
  writer_line=$(grep -o 'sqlite writer: .*' "$work/receiver.log" 2>/dev/null | tail -1) || true
  if [[ -n "$writer_line" ]]; then echo "   $writer_line"; fi
  # CPU per request does not depend on what else the machine is doing; with it, the ratio
  # the two would reach on two cores of their own, CPU-bound with wrk beside them, is
  # (wrk + bare) / (wrk + receiver).
  bare_n=$(field completed "$bare")
  recv_n=$(field completed "$recv")
  printf '   CPU per request: bare: %s\n' "$(cpu_report "$bare" "$bare_n")"
  printf '                    receiver: %s\n' "$(cpu_report "$recv" "$recv_n")"
  cpu_ratio=$(awk -v wb="$(wrk_cpu "$bare" "$bare_n")" -v wr="$(wrk_cpu "$recv" "$recv_n")" \
    -v b="$(server_cpu "$bare" "$bare_n")" -v r="$(server_cpu "$recv" "$recv_n")" \
    'BEGIN { printf "%.3f", (wb + b) / (wr + r) }')
  printf '   CPU-bound ratio (wrk + bare) / (wrk + receiver): %s\n' "$cpu_ratio"
  printf '   context switches per request (server + wrk): bare %s + %s, receiver %s + %s\n' \
    "$(awk -v c="$(field server_cs "$bare")" -v n="$bare_n" 'BEGIN { printf "%.2f", c / n }')" \
    "$(awk -v c="$(field wrk_cs "$bare")" -v n="$bare_n" 'BEGIN { printf "%.2f", c / n }')" \
    "$(awk -v c="$(field server_cs "$recv")" -v n="$recv_n" 'BEGIN { printf "%.2f", c / n }')" \
    "$(awk -v c="$(field wrk_cs "$recv")" -v n="$recv_n" 'BEGIN { printf "%.2f", c / n }')"
  ratios[$key]+="$ratio "
  cpu_ratios[$key]+="$cpu_ratio "
  recv_cpus[$key]+="$(awk -v w="$(wrk_cpu "$recv" "$recv_n")" -v r="$(server_cpu "$recv" "$recv_n")" 'BEGIN { printf "%.1f", w + r }') "
  bare_cpus[$key]+="$(awk -v w="$(wrk_cpu "$bare" "$bare_n")" -v r="$(server_cpu "$bare" "$bare_n")" 'BEGIN { printf "%.1f", w + r }') "
  recv_p99s[$key]+="$(ms p99_us "$recv") "
  bare_p99s[$key]+="$(ms p99_us "$bare") "
  if [[ "$PERF" == 1 ]]; then
    echo "   perf profile of the receiver (self time, top symbols):"
    perf report -i "$work/perf-$style-$round-$mode.data" --stdio --no-children --sort dso,symbol \
      --percent-limit 1 2>/dev/null | grep -E '^ +[0-9]' | head -40 | sed 's/^/     /'
    cp "$work/perf-$style-$round-$mode.data" "target/perf-receiver-$style-$round-$mode.data" 2>/dev/null || true
  fi
}

for round in $(seq 1 "$ROUNDS"); do
  for style in $styles; do
    for backend in $backends; do
      pair "$style" "$round" "$backend"
    done
  done
  if [[ "$NULL_QUEUE" == 1 ]]; then
    # Verify + intake with storage taken out: what the HTTP path itself costs.
    start_server "$work/null.log" env HOOKDOCK_GITHUB_SECRET="$secret" "$null_bin"
    null=$(load "null-$round" random)
    stop_server
    null_2xx=$(($(field completed "$null") - $(field non2xx "$null")))
    null_rps=$(awk -v n="$null_2xx" -v s="$DURATION" 'BEGIN { printf "%.0f", n / s }')
    printf '   null queue:   %8s req/s  p50 %6s ms  p99 %6s ms\n' \
      "$null_rps" "$(ms p50_us "$null")" "$(ms p99_us "$null")"
    printf '   CPU per request: null queue: %s\n' "$(cpu_report "$null" "$(field completed "$null")")"
    # The same, each delivery handed to a thread that batches like the SQLite writer and
    # spends its CPU time without storing anything: the cost of the hand-off pattern itself.
    start_server "$work/handoff.log" env HOOKDOCK_GITHUB_SECRET="$secret" \
      HOOKDOCK_NULL_WRITER_US="$NULL_WRITER_US" "$null_bin"
    handoff=$(load "handoff-$round" random)
    stop_server
    handoff_2xx=$(($(field completed "$handoff") - $(field non2xx "$handoff")))
    handoff_rps=$(awk -v n="$handoff_2xx" -v s="$DURATION" 'BEGIN { printf "%.0f", n / s }')
    printf '   hand-off (%s us): %8s req/s  p50 %6s ms  p99 %6s ms\n' \
      "$NULL_WRITER_US" "$handoff_rps" "$(ms p50_us "$handoff")" "$(ms p99_us "$handoff")"
    printf '   CPU per request: hand-off: %s\n' "$(cpu_report "$handoff" "$(field completed "$handoff")")"
  fi
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for style in $styles; do
  for backend in $backends; do
    for mode in $limit_modes; do
      key="$style ids, receiver on $backend, limits $mode"
      echo "== $key: ratio receiver/bare per round: ${ratios[$key]}; median $(median <<<"${ratios[$key]}")"
      echo "   CPU-bound ratio per round: ${cpu_ratios[$key]}; median $(median <<<"${cpu_ratios[$key]}")"
      echo "   CPU per request incl. wrk (us), median: bare $(median <<<"${bare_cpus[$key]}"), receiver $(median <<<"${recv_cpus[$key]}")"
      echo "   p99 (ms), median: bare $(median <<<"${bare_p99s[$key]}"), receiver $(median <<<"${recv_p99s[$key]}")"
    done
    key="$style ids, receiver on $backend"
    if [[ -n "${on_off_rps[$key]:-}" ]]; then
      echo "== $key: limits on/off, req/s per round: ${on_off_rps[$key]}; median $(median <<<"${on_off_rps[$key]}")"
      echo "   server CPU per request, on/off per round: ${on_off_cpu[$key]}; median $(median <<<"${on_off_cpu[$key]}")"
    fi
  done
done
if ((status != 0)); then
  echo "stored rows and 2xx answers differ" >&2
fi
exit "$status"
