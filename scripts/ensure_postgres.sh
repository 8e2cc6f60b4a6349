#!/usr/bin/env bash
# Makes a PostgreSQL cluster for the node's archive tests reachable on loopback and writes its
# DSN to var/postgres.dsn. Idempotent: installs Debian's postgresql only if missing, creates the
# cluster (owned by the unprivileged `postgres` user, data in var/pgdata) only once, starts it
# only if it is not running.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DATA=$ROOT/var/pgdata
PORT_FILE=$ROOT/var/postgres.port
DSN_FILE=$ROOT/var/postgres.dsn
PW_FILE=$ROOT/var/postgres.password

pg_bin() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
    [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

if ! BIN=$(pg_bin); then
    echo "ensure_postgres: PostgreSQL not installed, installing Debian's postgresql" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    BIN=$(pg_bin)
fi

# The server refuses to run as root: run it as the unprivileged account Debian creates.
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi

mkdir -p "$ROOT/var"
# A free loopback port, chosen once per cluster: another clone's cluster may hold any fixed one.
if [ -n "${SETTLEMENT_PG_PORT:-}" ]; then
    PORT=$SETTLEMENT_PG_PORT
elif [ -s "$PORT_FILE" ] && [ -s "$DATA/PG_VERSION" ]; then
    PORT=$(cat "$PORT_FILE")
else
    PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
echo "$PORT" > "$PORT_FILE"
if [ ! -s "$DATA/PG_VERSION" ]; then
    mkdir -p "$DATA"
    [ "$(id -u)" = 0 ] && chown postgres: "$DATA"
    chmod 700 "$DATA"
    head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$PW_FILE"
    chmod 600 "$PW_FILE"
    PWTMP=$(mktemp)
    cp "$PW_FILE" "$PWTMP"
    [ "$(id -u)" = 0 ] && chown postgres: "$PWTMP"
    as_pg "$BIN/initdb" -D "$DATA" -U settlement --pwfile="$PWTMP" -A scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$PWTMP"
fi

if as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    PORT=$(sed -n 4p "$DATA/postmaster.pid")  # already running: on the port it was started with
    echo "$PORT" > "$PORT_FILE"
else
    as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$DATA" start >/dev/null
fi

DSN="postgresql://settlement:$(cat "$PW_FILE")@127.0.0.1:$PORT/postgres"
echo "$DSN" > "$DSN_FILE"
chmod 600 "$DSN_FILE"
echo "ensure_postgres: running on 127.0.0.1:$PORT; DSN in var/postgres.dsn"
echo "export SETTLEMENT_PG_DSN=\$(cat $DSN_FILE)"
