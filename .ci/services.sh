#!/usr/bin/env bash
# Start PostgreSQL and MariaDB for the DB check tests when they are not answering, wait until
# they do (bounded), and create the database `test` in each. Idempotent: a running server is
# left alone. Exits non-zero, saying which server, when one cannot be started.
#
#   PostgreSQL 127.0.0.1:5432, user postgres, trust auth, database test
#   MariaDB    127.0.0.1:3306, user root, no password, database test
#
# Environment: RG_SERVICES_WAIT_S (default 60), PGPORT (5432), MARIADB_PORT (3306).
set -euo pipefail

WAIT_S="${RG_SERVICES_WAIT_S:-60}"
PGPORT="${PGPORT:-5432}"
MARIADB_PORT="${MARIADB_PORT:-3306}"

say() { printf 'services: %s\n' "$*"; }
die() { printf 'services: ERROR: %s\n' "$*" >&2; exit 1; }

pg_up() { pg_isready -q -h 127.0.0.1 -p "$PGPORT"; }
mariadb_up() { mariadb-admin --protocol=tcp -h127.0.0.1 -P"$MARIADB_PORT" -uroot ping >/dev/null 2>&1; }

wait_for() {  # name, probe function
    local name="$1" probe="$2" waited=0
    until "$probe"; do
        [ "$waited" -ge "$WAIT_S" ] && return 1
        sleep 1
        waited=$((waited + 1))
    done
    say "$name answers (after ${waited} s)"
}

start_postgres() {
    pg_up && { say "PostgreSQL already answers on 127.0.0.1:$PGPORT"; return 0; }
    command -v pg_isready >/dev/null || die "PostgreSQL client tools (pg_isready) are not installed"
    say "starting PostgreSQL"
    if command -v pg_lsclusters >/dev/null && [ -n "$(pg_lsclusters -h 2>/dev/null)" ]; then
        pg_lsclusters -h | while read -r version cluster _; do
            pg_ctlcluster "$version" "$cluster" start 2>/dev/null || true
        done
    elif [ -x /etc/init.d/postgresql ]; then
        service postgresql start >/dev/null 2>&1 || /etc/init.d/postgresql start || true
    fi
    wait_for PostgreSQL pg_up || die "PostgreSQL did not answer on 127.0.0.1:$PGPORT within ${WAIT_S} s (see /var/log/postgresql/)"
}

start_mariadb() {
    mariadb_up && { say "MariaDB already answers on 127.0.0.1:$MARIADB_PORT"; return 0; }
    command -v mariadb-admin >/dev/null || die "MariaDB client tools (mariadb-admin) are not installed"
    say "starting MariaDB"
    if [ -x /etc/init.d/mariadb ]; then
        service mariadb start >/dev/null 2>&1 || /etc/init.d/mariadb start || true
    elif [ -x /etc/init.d/mysql ]; then
        service mysql start >/dev/null 2>&1 || /etc/init.d/mysql start || true
    fi
    wait_for MariaDB mariadb_up || die "MariaDB did not answer on 127.0.0.1:$MARIADB_PORT within ${WAIT_S} s (see /var/log/mysql/)"
}

create_databases() {
    local psql_cmd=(psql -h 127.0.0.1 -p "$PGPORT" -U postgres -v ON_ERROR_STOP=1 -qAt)
    if [ "$("${psql_cmd[@]}" -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'test'")" != 1 ]; then
        "${psql_cmd[@]}" -d postgres -c "CREATE DATABASE test" || die "cannot create PostgreSQL database test"
        say "created PostgreSQL database test"
    fi
    mariadb --protocol=tcp -h127.0.0.1 -P"$MARIADB_PORT" -uroot -e "CREATE DATABASE IF NOT EXISTS test" \
        || die "cannot create MariaDB database test (is root allowed without a password?)"
}

start_postgres
start_mariadb
create_databases
say "ready: PostgreSQL 127.0.0.1:$PGPORT, MariaDB 127.0.0.1:$MARIADB_PORT, database test in each"
