#!/usr/bin/env bash
# Throwaway PostgreSQL 15 and MariaDB servers on 127.0.0.1 for the test suite, and a
# PgBouncer in transaction pooling mode in front of that PostgreSQL.
#
#   .ci/databases.sh         install if missing, wipe $DURABLE_DB_ROOT, start all three
#   .ci/databases.sh stop    stop them (what a previous run under the same root started)
#   .ci/databases.sh pg-stop | pg-start   stop / start the PostgreSQL server only
#
# Env: DURABLE_DB_ROOT (/tmp/durable-ci-db), DURABLE_PG_PORT (5432),
#      DURABLE_MYSQL_PORT (3306), DURABLE_PGBOUNCER_PORT (6432),
#      DURABLE_DB_TIMEOUT (60: seconds to wait for each server to start).
# Every server: user durable / password durable (may create and drop databases),
# database durable. PgBouncer forwards any database name to the PostgreSQL server.
set -euo pipefail

ROOT=${DURABLE_DB_ROOT:-/tmp/durable-ci-db}
PG_PORT=${DURABLE_PG_PORT:-5432}
MY_PORT=${DURABLE_MYSQL_PORT:-3306}
PGB_PORT=${DURABLE_PGBOUNCER_PORT:-6432}
TIMEOUT=${DURABLE_DB_TIMEOUT:-60}
PG_BIN=/usr/lib/postgresql/15/bin
PGDATA=$ROOT/pg/data
MY_SOCK=$ROOT/mysql/mysqld.sock
MY_PID=$ROOT/mysql/launched.pid     # written by us at launch: no race with a slow start
# --no-defaults everywhere: keep Debian's /etc/mysql/*.cnf (socket, pid file,
# datadir under /run and /var) out of our throwaway server and clients.
MY_CLIENT=(mariadb --no-defaults)
PGB_DIR=$ROOT/pgbouncer
PGB_INI=$PGB_DIR/pgbouncer.ini

case "$ROOT" in /|"") echo "refusing DURABLE_DB_ROOT='$ROOT'" >&2; exit 2 ;; esac

log() { echo "[databases] $*"; }
die() { echo "[databases] ERROR: $*" >&2; exit 1; }

stop_ours() {
    # PgBouncer first: it holds connections to our PostgreSQL. Check the command line,
    # as for MariaDB below.
    local pgb_pid; pgb_pid=$(cat "$PGB_DIR/pgbouncer.pid" 2>/dev/null || true)
    if [ -n "$pgb_pid" ] && grep -qzxF -- "$PGB_INI" "/proc/$pgb_pid/cmdline" 2>/dev/null; then
        log "stopping PgBouncer (pid $pgb_pid)"
        kill "$pgb_pid" 2>/dev/null || true   # SIGTERM: immediate shutdown
        for ((i = 0; i < 120; i++)); do kill -0 "$pgb_pid" 2>/dev/null || break; sleep 0.25; done
        ! kill -0 "$pgb_pid" 2>/dev/null || die "PgBouncer pid $pgb_pid did not stop"
    fi
    if [ -f "$PGDATA/postmaster.pid" ]; then
        log "stopping PostgreSQL ($PGDATA)"
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w -t 60 stop >/dev/null || true
    fi
    # Check the command line: after a reboot the recorded pid may be anything.
    local pid; pid=$(cat "$MY_PID" 2>/dev/null || true)
    if [ -n "$pid" ] && grep -qzxF -- "--datadir=$ROOT/mysql/data" "/proc/$pid/cmdline" 2>/dev/null; then
        log "stopping MariaDB (pid $pid)"
        kill "$pid" 2>/dev/null || true
        for ((i = 0; i < 240; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        ! kill -0 "$pid" 2>/dev/null || die "MariaDB pid $pid did not stop"
    fi
}

# pg-stop / pg-start: the outage test stops and restarts the running PostgreSQL.
case "${1:-start}" in
    stop) stop_ours; exit 0 ;;
    pg-stop) exec runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop ;;
    pg-start) exec runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$ROOT/pg/server.log" -w start ;;
    start) ;;
    *) echo "usage: $0 [start|stop|pg-stop|pg-start]" >&2; exit 2 ;;
esac

# --- packages ---------------------------------------------------------------
pkgs=(postgresql-15 mariadb-server mariadb-client libmariadb-dev pkg-config pgbouncer)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's packages create (and, unless a policy-rc.d forbids it, start) their
# own servers on the default ports: a 'main' cluster under /var/lib/postgresql,
# the 'mariadb' service and the 'pgbouncer' service (on 6432). Stop them so they
# can't shadow ours.
if command -v pg_lsclusters >/dev/null; then
    pg_lsclusters -h | while read -r ver name _port status _rest; do
        case "$status" in online*) log "stopping Debian cluster $ver/$name"; pg_ctlcluster "$ver" "$name" stop ;; esac
    done
fi
if [ -x /etc/init.d/mariadb ] && service mariadb status >/dev/null 2>&1; then
    log "stopping Debian's mariadb service"; service mariadb stop >/dev/null
fi
if [ -x /etc/init.d/pgbouncer ] && service pgbouncer status >/dev/null 2>&1; then
    log "stopping Debian's pgbouncer service"; service pgbouncer stop >/dev/null
fi

# --- fresh root -------------------------------------------------------------
stop_ours
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_busy "$PG_PORT" && die "127.0.0.1:$PG_PORT is already taken (set DURABLE_PG_PORT?)"
port_busy "$MY_PORT" && die "127.0.0.1:$MY_PORT is already taken (set DURABLE_MYSQL_PORT?)"
port_busy "$PGB_PORT" && die "127.0.0.1:$PGB_PORT is already taken (set DURABLE_PGBOUNCER_PORT?)"
rm -rf "$ROOT"
mkdir -p "$ROOT/pg" "$ROOT/mysql" "$PGB_DIR"
chmod 755 "$ROOT"                     # the postgres and mysql users must traverse it
chown postgres:postgres "$ROOT/pg" "$PGB_DIR"   # PgBouncer refuses to run as root
chown mysql:mysql "$ROOT/mysql"
cd "$ROOT"                            # so runuser doesn't complain about root's cwd

wait_for() {  # name logfile command...
    local name=$1 logfile=$2; shift 2
    for ((i = 0; i < TIMEOUT * 4; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
    echo "[databases] ERROR: $name not ready after ${TIMEOUT}s; its log ($logfile):" >&2
    cat "$logfile" >&2 || true
    exit 1
}

# --- PostgreSQL -------------------------------------------------------------
# Explicit UTF8: with LANG unset initdb would pick SQL_ASCII.
runuser -u postgres -- "$PG_BIN/initdb" -D "$PGDATA" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >"$ROOT/pg/initdb.log" 2>&1 \
    || { cat "$ROOT/pg/initdb.log" >&2; die "initdb failed"; }
cat >>"$PGDATA/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$ROOT/pg'
EOF
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$ROOT/pg/server.log" -W start >/dev/null

# --- MariaDB ----------------------------------------------------------------
mariadb-install-db --no-defaults --user=mysql --datadir="$ROOT/mysql/data" --skip-test-db \
    >"$ROOT/mysql/install.log" 2>&1 || { cat "$ROOT/mysql/install.log" >&2; die "mariadb-install-db failed"; }
# setsid + redirects: fully detached, so it never holds a caller's stdout open.
setsid mariadbd --no-defaults --user=mysql --datadir="$ROOT/mysql/data" \
    --bind-address=127.0.0.1 --port="$MY_PORT" --socket="$MY_SOCK" --pid-file="$ROOT/mysql/server.pid" \
    --log-error="$ROOT/mysql/server.log" --skip-name-resolve \
    --transaction-isolation=READ-COMMITTED --binlog-format=ROW \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
    </dev/null >>"$ROOT/mysql/server.log" 2>&1 &
echo $! >"$MY_PID"                   # setsid execs in place here, so $! is mariadbd

# --- wait, then create the durable user and database -------------------------
wait_for PostgreSQL "$ROOT/pg/server.log" "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"
"$PG_BIN/psql" -q -X -v ON_ERROR_STOP=1 -h "$ROOT/pg" -p "$PG_PORT" -U postgres -d postgres \
    -c "CREATE ROLE durable LOGIN SUPERUSER PASSWORD 'durable'" \
    -c "CREATE DATABASE durable OWNER durable"

wait_for MariaDB "$ROOT/mysql/server.log" mariadb-admin --no-defaults -S "$MY_SOCK" -u root ping
# root@localhost authenticates by unix_socket: we are OS root.
"${MY_CLIENT[@]}" -S "$MY_SOCK" -u root <<'SQL'
CREATE USER 'durable'@'127.0.0.1' IDENTIFIED BY 'durable';
CREATE USER 'durable'@'localhost' IDENTIFIED BY 'durable';
GRANT ALL PRIVILEGES ON *.* TO 'durable'@'127.0.0.1';
GRANT ALL PRIVILEGES ON *.* TO 'durable'@'localhost';
CREATE DATABASE durable CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
SQL

# --- PgBouncer ----------------------------------------------------------------
# Transaction pooling, Debian's defaults otherwise (1.18: no prepared statements
# across transactions, no LISTEN): what managed poolers run. Any database name goes
# to our PostgreSQL under the same name, so tests reach their test database through
# it. No unix socket: another copy of this script may run beside this one.
printf '"durable" "durable"\n' >"$PGB_DIR/userlist.txt"
printf '%s\n' \
    "[databases]" \
    "* = host=127.0.0.1 port=$PG_PORT" \
    "" \
    "[pgbouncer]" \
    "listen_addr = 127.0.0.1" \
    "listen_port = $PGB_PORT" \
    "unix_socket_dir =" \
    "pool_mode = transaction" \
    "auth_type = scram-sha-256" \
    "auth_file = $PGB_DIR/userlist.txt" \
    "admin_users = durable" \
    "logfile = $PGB_DIR/pgbouncer.log" \
    "pidfile = $PGB_DIR/pgbouncer.pid" >"$PGB_INI"
chmod 600 "$PGB_DIR/userlist.txt"
chown postgres:postgres "$PGB_DIR/userlist.txt" "$PGB_INI"
runuser -u postgres -- pgbouncer -d -q "$PGB_INI" </dev/null >"$PGB_DIR/start.log" 2>&1 \
    || { cat "$PGB_DIR/start.log" >&2; die "PgBouncer did not start"; }

# Prove the URLs work: password login over TCP as durable.
PGPASSWORD=durable "$PG_BIN/psql" -X -At -h 127.0.0.1 -p "$PG_PORT" -U durable -d durable -c 'select 1' >/dev/null \
    || die "PostgreSQL: durable cannot log in over TCP"
"${MY_CLIENT[@]}" -h 127.0.0.1 -P "$MY_PORT" -u durable -pdurable durable -e 'select 1' >/dev/null \
    || die "MariaDB: durable cannot log in over TCP"
wait_for PgBouncer "$PGB_DIR/pgbouncer.log" env PGPASSWORD=durable "$PG_BIN/psql" -X -At \
    -h 127.0.0.1 -p "$PGB_PORT" -U durable -d durable -c 'select 1'

log "ready (data under $ROOT; the last URL is PgBouncer, transaction pooling):"
echo "postgres://durable:durable@127.0.0.1:$PG_PORT/durable"
echo "mysql://durable:durable@127.0.0.1:$MY_PORT/durable"
echo "postgres://durable:durable@127.0.0.1:$PGB_PORT/durable"
