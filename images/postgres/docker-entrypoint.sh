#!/usr/bin/env bash
# Entrypoint of the cdb-ops fallback PostgreSQL image (Debian postgresql-15).
# Mirrors the parts of the official postgres image's entrypoint that cdb-ops relies on:
#   - POSTGRES_USER (default postgres), POSTGRES_DB (default $POSTGRES_USER),
#     POSTGRES_PASSWORD_FILE (wins over POSTGRES_PASSWORD), POSTGRES_INITDB_ARGS,
#     POSTGRES_HOST_AUTH_METHOD (default scram-sha-256), /docker-entrypoint-initdb.d/*.{sh,sql,sql.gz}
#   - empty $PGDATA: initdb + create the database; a non-empty $PGDATA is reused as is
#   - started as root: fix ownership of $PGDATA, then drop to user postgres with setpriv
#   - postgres ends up as PID 1 (exec chain), so docker stop shuts it down cleanly
# The password is only ever read from the file/variable into an unexported shell variable and
# handed to initdb through a pipe (--pwfile=/dev/fd/N): never on a command line, never logged.
# A secret file readable by root only also works: it is opened before the privilege drop.
set -Eeuo pipefail

log() { printf '[entrypoint] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

# First argument is a flag (e.g. `-c shared_buffers=256MB`): assume "postgres".
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
	set -- postgres "$@"
fi

if [ "$1" != postgres ]; then
	# Anything else (psql, bash, pg_dump ...) runs as is.
	exec "$@"
fi

if [ "$(id -u)" = 0 ]; then
	# Fresh named volume or bind mount: may be root-owned or carry another uid.
	mkdir -p "$PGDATA"
	find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
	chmod 700 "$PGDATA"
	mkdir -p /var/run/postgresql
	chown postgres:postgres /var/run/postgresql
	chmod 3777 /var/run/postgresql
	# The secret may be readable by root only (like with the official image, which reads it as
	# root): open it here and hand the open descriptor (not the value) across the privilege drop.
	if [ ! -s "$PGDATA/PG_VERSION" ] && [ -n "${POSTGRES_PASSWORD_FILE:-}" ] && [ -r "$POSTGRES_PASSWORD_FILE" ]; then
		exec 3<"$POSTGRES_PASSWORD_FILE"
		export CDB_PASSWORD_FD=3
	fi
	export HOME=/var/lib/postgresql
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

# From here on we are the postgres user (or whatever --user the container was given).
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	POSTGRES_USER="${POSTGRES_USER:-postgres}"
	POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
	auth_host="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"

	pg_password=""
	if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
		if [ "${CDB_PASSWORD_FD:-}" = 3 ]; then
			pg_password="$(cat <&3)"   # the inherited descriptor: no re-open, no permission check
			exec 3<&-
			unset CDB_PASSWORD_FD
		elif [ -r "$POSTGRES_PASSWORD_FILE" ]; then
			pg_password="$(<"$POSTGRES_PASSWORD_FILE")"
		else
			die "POSTGRES_PASSWORD_FILE=$POSTGRES_PASSWORD_FILE is not readable"
		fi
		if [ -n "${POSTGRES_PASSWORD:-}" ]; then
			log "both POSTGRES_PASSWORD_FILE and POSTGRES_PASSWORD are set; using the file"
		fi
	elif [ -n "${POSTGRES_PASSWORD:-}" ]; then
		pg_password="$POSTGRES_PASSWORD"
	fi
	unset POSTGRES_PASSWORD
	if [ -z "$pg_password" ] && [ "$auth_host" != trust ]; then
		die "database is uninitialized and no superuser password is given: set POSTGRES_PASSWORD_FILE (or POSTGRES_PASSWORD)"
	fi

	log "initializing $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB, host auth $auth_host)"
	initdb_args=(--username="$POSTGRES_USER" --encoding=UTF8 --locale=C.UTF-8
		--auth-local=trust --auth-host="$auth_host")
	# shellcheck disable=SC2206  # POSTGRES_INITDB_ARGS is word-split on purpose, like upstream
	initdb_args+=(${POSTGRES_INITDB_ARGS:-})
	if [ -n "$pg_password" ]; then
		initdb "${initdb_args[@]}" --pwfile=<(printf '%s\n' "$pg_password") >&2
	else
		initdb "${initdb_args[@]}" >&2
	fi
	unset pg_password
	printf '\n# cdb-ops fallback image: any address, password required\nhost all all all %s\n' \
		"$auth_host" >>"$PGDATA/pg_hba.conf"

	# Temporary server to create the database and run init scripts: no TCP, and a private socket
	# directory, so that a healthcheck (pg_isready on the default socket or on TCP) does not see it
	# and the container only turns healthy once the real server runs.
	init_socket_dir="$(mktemp -d /tmp/pg-init.XXXXXX)"
	export PGHOST="$init_socket_dir" PGPORT=5432
	pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories='$init_socket_dir' -p 5432" -w start >&2
	psql_cmd=(psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --username "$POSTGRES_USER")
	if [ "$POSTGRES_DB" != postgres ]; then
		"${psql_cmd[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";' >&2
	fi
	for f in /docker-entrypoint-initdb.d/*; do
		[ -e "$f" ] || continue
		case "$f" in
			*.sh) log "running $f"; if [ -x "$f" ]; then "$f"; else . "$f"; fi ;;
			*.sql) log "running $f"; "${psql_cmd[@]}" --dbname "$POSTGRES_DB" -f "$f" >&2 ;;
			*.sql.gz) log "running $f"; gunzip -c "$f" | "${psql_cmd[@]}" --dbname "$POSTGRES_DB" >&2 ;;
			*) log "ignoring $f" ;;
		esac
	done
	pg_ctl -D "$PGDATA" -m fast -w stop >&2
	unset PGHOST PGPORT
	rm -rf "$init_socket_dir"
	log "initialization complete"
else
	log "reusing existing data in $PGDATA (PostgreSQL $(cat "$PGDATA/PG_VERSION")); no initialization"
	unset POSTGRES_PASSWORD
fi

unset CDB_PASSWORD_FD
exec 3<&-
exec "$@"
