#!/usr/bin/env bash
# Makes a PostgreSQL cluster for the node's archive tests reachable on loopback and writes its
# DSN to var/postgres.dsn (in the clone, git-ignored). Idempotent: installs Debian's postgresql
# only if missing, creates the cluster only once, starts it only if it is not running.
#
# The cluster lives outside the clone, in a folder its unprivileged owner can always enter (a
# clone under a home directory of mode 700, as /root is, is closed to the `postgres` user):
# ~postgres/settlement-clusters/NAME-HASH when run as root, else
# ${XDG_STATE_HOME:-~/.local/state}/settlement-postgres/NAME-HASH, where NAME-HASH is the clone's
# folder name and a hash of its absolute path, so two clones never share or collide.
# SETTLEMENT_PG_DIR overrides the folder, SETTLEMENT_PG_PORT the port.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DSN_FILE=$ROOT/var/postgres.dsn

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

KEY="$(basename "$ROOT")-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)"
# The server refuses to run as root: run it as the unprivileged account Debian creates.
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
    as_pg() { (cd / && runuser -u postgres -- "$@"); }  # from /: the clone may be closed to it
    PG_HOME=$(getent passwd postgres | cut -d: -f6)
    CLUSTER=${SETTLEMENT_PG_DIR:-$PG_HOME/settlement-clusters/$KEY}
    mkdir -p "$CLUSTER"
    chown postgres: "$(dirname "$CLUSTER")" "$CLUSTER"
else
    as_pg() { "$@"; }
    CLUSTER=${SETTLEMENT_PG_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/settlement-postgres/$KEY}
    mkdir -p "$CLUSTER"
fi
chmod 700 "$CLUSTER"
DATA=$CLUSTER/data
PORT_FILE=$CLUSTER/port
PW_FILE=$CLUSTER/password
echo "$ROOT" > "$CLUSTER/clone"  # whose cluster this is

if [ -s "$ROOT/var/pgdata/PG_VERSION" ]; then
    echo "ensure_postgres: var/pgdata is an older in-clone cluster, no longer used;" \
         "stop it with: runuser -u postgres -- $BIN/pg_ctl -D $ROOT/var/pgdata stop" >&2
fi

# A free loopback port, chosen once per cluster: another clone's cluster may hold any fixed one.
if [ -n "${SETTLEMENT_PG_PORT:-}" ]; then
    PORT=$SETTLEMENT_PG_PORT
elif [ -s "$PORT_FILE" ] && [ -s "$DATA/PG_VERSION" ]; then
    PORT=$(cat "$PORT_FILE")
else
    PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
if [ ! -s "$DATA/PG_VERSION" ]; then
    umask 077
    head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$PW_FILE"
    [ "$(id -u)" = 0 ] && chown postgres: "$PW_FILE"
    as_pg mkdir -p "$DATA"
    as_pg "$BIN/initdb" -D "$DATA" -U settlement --pwfile="$PW_FILE" -A scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 >/dev/null
fi

if as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    PORT=$(sed -n 4p "$DATA/postmaster.pid")  # already running: on the port it was started with
else
    as_pg "$BIN/pg_ctl" -D "$DATA" -l "$CLUSTER/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$DATA" start >/dev/null
fi
echo "$PORT" > "$PORT_FILE"

mkdir -p "$ROOT/var"
(umask 077; echo "postgresql://settlement:$(cat "$PW_FILE")@127.0.0.1:$PORT/postgres" > "$DSN_FILE")
echo "ensure_postgres: cluster in $CLUSTER, running on 127.0.0.1:$PORT; DSN in var/postgres.dsn"
echo "export SETTLEMENT_PG_DSN=\$(cat $DSN_FILE)"
