#!/bin/sh
# Entrypoint of the cdb-ops fallback Redis image.
# Started as root: make /data belong to user redis (a fresh named volume or bind mount may be
# root-owned), then drop to redis with setpriv and exec the given command, so the command (or the
# redis-server it execs) is PID 1 and receives docker stop's SIGTERM directly.
# Note: the command then runs as redis, so a secret it reads (/run/secrets/redis_password) must be
# readable by that user (cdb-ops mounts secrets root-owned, mode 0444).
set -eu

# First argument is a flag or a config file: assume redis-server (as the official image does).
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi

# Like the official image: data files readable by redis only, unless a umask was chosen.
if [ "$(umask)" = 0022 ]; then
	umask 0077
fi

if [ "$(id -u)" = 0 ]; then
	mkdir -p /data
	find /data \! -user redis -exec chown redis:redis '{}' +
	HOME="$(getent passwd redis | cut -d: -f6)"
	export HOME
	exec setpriv --reuid=redis --regid=redis --init-groups "$@"
fi

exec "$@"
