#!/usr/bin/env bash
# Starts (or stops) a throwaway PostgreSQL server for hookdock's tests and benchmarks.
#
#   eval "$(scripts/postgres-test-server.sh start)"   # prints `export ...` lines
#   cargo test --all-features --test postgres_queue
#   scripts/postgres-test-server.sh stop "$HOOKDOCK_POSTGRES_TEST_DIR"
#
# `start` creates a new cluster in a temporary directory with Debian's PostgreSQL binaries
# (`apt-get install -y postgresql`; any installed major version, newest first, or the one in
# $PG_BINDIR), starts it on 127.0.0.1 and a free port, and prints on stdout:
#
#   export HOOKDOCK_TEST_POSTGRES_URL=postgres://hookdock@127.0.0.1:PORT/hookdock
#   export HOOKDOCK_POSTGRES_TEST_DIR=/tmp/hookdock-pg.XXXXXX
#
# Everything else (progress, the server log on failure) goes to stderr. initdb refuses to run
# as root, so as root the cluster is created and run as the `postgres` user (created by the
# Debian package), or $PG_USER if set. The server keeps fsync on: the tests measure a real,
# durable database. `stop DIR` stops the server and removes DIR.
set -euo pipefail

log() { printf '%s\n' "postgres-test-server: $*" >&2; }
die() { log "error: $*"; exit 1; }

find_bindir() {
    if [[ -n "${PG_BINDIR:-}" ]]; then
        [[ -x "$PG_BINDIR/initdb" ]] || die "PG_BINDIR=$PG_BINDIR has no initdb"
        printf '%s\n' "$PG_BINDIR"
        return
    fi
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -V -r); do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
            printf '%s\n' "$dir"
            return
        fi
    done
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(command -v initdb)"
        return
    fi
    die "no PostgreSQL server binaries found; install them with: apt-get install -y postgresql"
}

# Runs a command as the server's owner: ourselves, or $RUN_AS when we are root.
as_owner() {
    if [[ -n "$RUN_AS" ]]; then
        if command -v runuser >/dev/null; then
            runuser -u "$RUN_AS" -- "$@"
        else
            su -s /bin/sh "$RUN_AS" -c "$(printf '%q ' "$@")"
        fi
    else
        "$@"
    fi
}

port_in_use() {
    # Succeeds if something accepts connections on 127.0.0.1:$1.
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
    local bindir dir port attempt
    bindir="$(find_bindir)"
    RUN_AS=""
    if [[ "$(id -u)" == 0 ]]; then
        RUN_AS="${PG_USER:-postgres}"
        id "$RUN_AS" >/dev/null 2>&1 || die "running as root and user '$RUN_AS' does not exist (set PG_USER)"
    fi
    dir="$(mktemp -d "${TMPDIR:-/tmp}/hookdock-pg.XXXXXX")"
    chmod 755 "$dir"
    [[ -n "$RUN_AS" ]] && chown "$RUN_AS" "$dir"
    log "initdb in $dir/data with $bindir"
    if ! as_owner "$bindir/initdb" -D "$dir/data" -U hookdock --auth=trust -E UTF8 \
        --no-locale >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        die "initdb failed"
    fi
    for attempt in $(seq 1 20); do
        port=$(( 20000 + (RANDOM % 20000) ))
        port_in_use "$port" && continue
        # Tests run in parallel (one schema each) and benchmarks open a few pools.
        if as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300" \
            start >/dev/null 2>&1; then
            break
        fi
        port=""
        log "could not start on a port (attempt $attempt); trying another"
    done
    if [[ -z "$port" ]]; then
        cat "$dir/server.log" >&2 || true
        die "server did not start"
    fi
    if ! as_owner "$bindir/createdb" -h 127.0.0.1 -p "$port" -U hookdock hookdock >/dev/null 2>&1; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
        die "createdb failed"
    fi
    printf '%s\n' "$bindir" >"$dir/bindir"
    printf '%s\n' "$RUN_AS" >"$dir/owner"
    log "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') listening on 127.0.0.1:$port"
    printf 'export HOOKDOCK_TEST_POSTGRES_URL=postgres://hookdock@127.0.0.1:%s/hookdock\n' "$port"
    printf 'export HOOKDOCK_POSTGRES_TEST_DIR=%s\n' "$dir"
}

stop() {
    local dir="${1:-${HOOKDOCK_POSTGRES_TEST_DIR:-}}"
    [[ -n "$dir" && -f "$dir/bindir" ]] || die "usage: $0 stop DIR (the HOOKDOCK_POSTGRES_TEST_DIR printed by start)"
    local bindir
    bindir="$(cat "$dir/bindir")"
    RUN_AS="$(cat "$dir/owner")"
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || log "server was not running"
    rm -rf -- "$dir"
    log "stopped and removed $dir"
}

case "${1:-start}" in
    start) start ;;
    stop) stop "${2:-}" ;;
    *) die "usage: $0 start | stop DIR" ;;
esac
