#!/usr/bin/env bash
# Makes sure the services the replica tests need are answering on this machine, and
# exports their URLs (unless already set):
#   PostgreSQL 15 at 127.0.0.1:5432, user postgres, trust auth
#       TOKENROUTER_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres
#       (an admin URL: tests CREATE and DROP their own databases through it)
#   Redis at 127.0.0.1:6379
#       TOKENROUTER_TEST_REDIS_URL=redis://127.0.0.1:6379
# Starts what is installed but down, installs what is missing with apt-get
# (non-interactive), and fails with one clear sentence if a service never answers.
# Never skips. Fast and idempotent when both are up. Sourced by scripts/test.sh; also
# runs on its own:
#
#   bash scripts/services.sh
set -euo pipefail

services_pg_host=127.0.0.1
services_pg_port=5432
services_redis_port=6379

services_step() { printf '\n==> %s\n' "$*"; }
services_fail() {
    printf 'services.sh: %s\n' "$*" >&2
    return 1
}
services_sudo() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }
services_apt_updated=""
services_apt_install() {
    if [ -z "$services_apt_updated" ]; then
        services_sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
        services_apt_updated=1
    fi
    services_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

# Waits up to $1 seconds for the command after it to succeed.
services_wait() {
    local seconds="$1"
    shift
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.5
    done
}

services_pg_ready() { pg_isready -q -h "$services_pg_host" -p "$services_pg_port"; }
services_pg_trusts_postgres() {
    psql -h "$services_pg_host" -p "$services_pg_port" -U postgres -d postgres -w -tAc 'select 1' 2>/dev/null | grep -qx 1
}

services_postgres() {
    if ! command -v pg_isready >/dev/null || ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
        services_step "installing PostgreSQL (apt-get)"
        services_apt_install postgresql
    fi
    if ! services_pg_ready; then
        services_step "starting PostgreSQL"
        local version
        version="$(ls /etc/postgresql | sort -V | tail -n 1)"
        services_sudo pg_ctlcluster --skip-systemctl-redirect "$version" main start ||
            services_sudo service postgresql start ||
            true
        services_wait 30 services_pg_ready ||
            services_fail "PostgreSQL never answered at $services_pg_host:$services_pg_port (pg_isready) within 30 s"
    fi
    if ! services_pg_trusts_postgres; then
        # A fresh Debian cluster asks for passwords over TCP: trust user postgres from
        # 127.0.0.1 (a test machine), ahead of every other rule, then reload.
        services_step "trusting user postgres on 127.0.0.1 (pg_hba.conf)"
        local hba
        hba="$(services_sudo su postgres -c "psql -tAc 'show hba_file'")"
        services_sudo sed -i '1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
        services_sudo su postgres -c "psql -qc 'select pg_reload_conf()'" >/dev/null
        services_wait 10 services_pg_trusts_postgres ||
            services_fail "PostgreSQL at $services_pg_host:$services_pg_port refuses user postgres without a password"
    fi
}

services_redis_ready() { redis-cli -h 127.0.0.1 -p "$services_redis_port" ping 2>/dev/null | grep -qx PONG; }

services_redis() {
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        services_step "installing Redis (apt-get)"
        services_apt_install redis-server
    fi
    if ! services_redis_ready; then
        services_step "starting Redis"
        redis-server --daemonize yes --bind 127.0.0.1 --port "$services_redis_port" --save "" --appendonly no >/dev/null
        services_wait 15 services_redis_ready ||
            services_fail "Redis never answered at 127.0.0.1:$services_redis_port (redis-cli ping) within 15 s"
    fi
}

services_postgres
services_redis
export TOKENROUTER_TEST_POSTGRES_URL="${TOKENROUTER_TEST_POSTGRES_URL:-postgres://postgres@$services_pg_host:$services_pg_port/postgres}"
export TOKENROUTER_TEST_REDIS_URL="${TOKENROUTER_TEST_REDIS_URL:-redis://127.0.0.1:$services_redis_port}"
printf '==> PostgreSQL and Redis are up: %s, %s\n' "$TOKENROUTER_TEST_POSTGRES_URL" "$TOKENROUTER_TEST_REDIS_URL"
