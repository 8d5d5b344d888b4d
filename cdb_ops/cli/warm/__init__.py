"""The warm server: one background process per installation that keeps cdb-ops' modules loaded, so
a command does not pay the ~0.5-1 s of importing typer, pydantic, docker-py, psycopg, redis and rich
every time (the Go binary of Docker Compose starts in 0.03 s; a CPython with these libraries cannot).

How a command runs through it (all local, one user):
- the `cdb-ops` process (the client) connects to a Unix socket in a private directory
  (`$XDG_RUNTIME_DIR/cdb-ops-<uid>/` or `/tmp/cdb-ops-<uid>/`, mode 0700) and hands over its stdin,
  stdout and stderr (the file descriptors themselves), arguments, environment, working directory and
  umask;
- the server forks; the fork runs the command exactly as the client would have (same `dispatch()`),
  writing straight to the client's terminal or pipes, in its own process group, and its exit status
  goes back to the client, which exits with it. Ctrl-C and other signals sent to the client are
  passed on to the command's process group; a client that dies takes the command with it (SIGTERM);
- no server yet, or a stale one (any loaded source file changed since it started): the client runs
  the command itself, as before, and starts a fresh server in the background for the next command.

It never changes what a command does or prints; it only skips the start-up. `CDB_OPS_WARM=0` turns it
off; the server exits after 15 idle minutes; `cdb-ops warm status|stop` shows or stops it."""
