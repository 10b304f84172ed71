#!/usr/bin/env bash
# A private PostgreSQL server for the tests of client/outbox and client/idem.
#
#   eval "$(scripts/postgres.sh start)"   # starts it, prints export SPOOLTEST_POSTGRES=…
#   scripts/postgres.sh stop              # stops it and removes its directory
#   scripts/postgres.sh status
#
# Debian's postgresql package is installed with apt-get when missing and the
# script runs as root. The server runs as a non-root user (PostgreSQL
# refuses root: the postgres user the package creates, through runuser),
# on its own data directory (SPOOLTEST_PG_DIR, default /tmp/spool-pg-$USER-PORT),
# listening on 127.0.0.1:SPOOLTEST_PG_PORT (default 55432) and on a unix socket
# in that directory, with a database named spool; trust authentication,
# for tests only. start prints the export line on stdout (everything else
# goes to stderr) and exits 1 when PostgreSQL cannot be had: the tests
# that need it then skip, saying why.
# Its variables are SPOOLTEST_*, not SPOOL_*: spool serve refuses unknown
# SPOOL_ variables, and the tests start servers with this environment.
set -euo pipefail

port=${SPOOLTEST_PG_PORT:-55432}
dir=${SPOOLTEST_PG_DIR:-${TMPDIR:-/tmp}/spool-pg-$(id -un)-$port}
dsn="postgres://postgres@127.0.0.1:$port/spool?sslmode=disable"

log() { echo "postgres.sh: $*" >&2; }

bindir() {
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
			echo "$d"
			return 0
		fi
	done
	return 1
}

# as runs a command as the server's user: postgres when running as root.
as() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

install() {
	if bindir >/dev/null; then
		return 0
	fi
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
		log "PostgreSQL is not installed (Debian package postgresql; needs root and apt-get to install it here)"
		return 1
	fi
	log "apt-get install postgresql"
	# Installing the package would start the distribution's own cluster: a
	# policy-rc.d refusing service starts is put in place for the install
	# when the machine has none, and removed after.
	local policy=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
	fi
	local ok=0
	(timeout 300 apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq postgresql >/dev/null) >&2 || ok=1
	if [ -n "$policy" ]; then rm -f "$policy"; fi
	if [ "$ok" != 0 ] || ! bindir >/dev/null; then
		log "PostgreSQL could not be installed"
		return 1
	fi
}

start() {
	install || return 1
	local bin
	bin=$(bindir)
	if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
		log "no postgres user to run the server as"
		return 1
	fi
	if [ -f "$dir/data/postmaster.pid" ] && as "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
		log "already running on $dir"
	else
		rm -rf "$dir"
		mkdir -p "$dir"
		if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
		as "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 || {
			cat "$dir/initdb.log" >&2
			log "initdb failed"
			return 1
		}
		# A server for tests: no fsync, generous connections.
		as "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
			-o "-p $port -k $dir -h 127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
			start >&2 || {
			cat "$dir/server.log" >&2 || true
			log "the server did not start"
			return 1
		}
	fi
	if ! as "$bin/psql" -h "$dir" -p "$port" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'spool'" postgres | grep -q 1; then
		as "$bin/psql" -h "$dir" -p "$port" -U postgres -qc "CREATE DATABASE spool" postgres >&2
	fi
	log "PostgreSQL on 127.0.0.1:$port (data in $dir)"
	echo "export SPOOLTEST_POSTGRES='$dsn'"
}

stop() {
	local bin
	if bin=$(bindir) && [ -f "$dir/data/postmaster.pid" ]; then
		as "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >&2 || true
	fi
	rm -rf "$dir"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status)
	bin=$(bindir) && as "$bin/pg_ctl" -D "$dir/data" status
	;;
*)
	echo "usage: $0 start|stop|status" >&2
	exit 2
	;;
esac
