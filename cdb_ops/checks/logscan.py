"""Reading logs for faults: which lines are errors (JSON `level` or plain ERROR/FATAL/PANIC), which are
lost database connections, which are expected noise, and which are a visitor's (a database session that
is not one of the stack's, e.g. the user's `psql`) — for validate's log check and `logs --errors`."""

from __future__ import annotations

import json
import re
from datetime import datetime

from cdb_ops.checks.context import CheckContext, service_containers
from cdb_ops.errors import CdbError
from cdb_ops.model.results import CheckResult

LOG_SCAN_LINES = 5000
# what a lost database connection looks like in our services' and in libpq's words
DB_CONNECTION_ERROR = re.compile(
    r"database connection|could not connect to server|connection to server at .* failed|"
    r"password authentication failed|server closed the connection unexpectedly|"
    r"could not translate host name",
    re.IGNORECASE,
)
PLAIN_ERROR = re.compile(r"\b(ERROR|FATAL|PANIC)\b")
# Postgres says FATAL to a client that connects while it starts or stops: readiness probes (ours and
# the services' reconnect loops) do exactly that, so these lines are expected, not a fault.
# A serialization failure (SQLSTATE 40001) is the contract of REPEATABLE READ: the risk manager retries
# its transaction when execution changed the portfolio under it; Postgres logs it anyway.
# A lock timeout is how a retention batch (cdb_common.retention) steps aside for a migration: by design.
BENIGN = re.compile(
    r"the database system is (starting up|shutting down|in recovery mode|not yet accepting connections)|"
    r"terminating connection due to administrator command|canceling statement due to lock timeout|"
    r"could not serialize access due to (concurrent update|read/write dependencies)"
)


# Postgres names each session's client in its log lines: the stack runs it with
# `log_line_prefix='%m [%p] %q[app=%a] '` (playbooks/stack.yaml), so a line reads
# `2026-12-07 09:07:28.776 UTC [50] [app=psql] ERROR:  …`; `%q` leaves the marker out of the server's own
# processes' lines, and Postgres writes `[unknown]` for a session without a name — which is also every
# session still connecting (the name arrives with the startup options, after authentication).
PG_SESSION = re.compile(r"^\S+ \S+ \S+ \[\d+\] \[app=(?P<app>.*?)\] (?P<level>[A-Z]+\d?):")
UNNAMED = "[unknown]"


def stack_application(name: str) -> bool:
    """Whether a Postgres `application_name` is the stack's own: every service connects as `cdb_<service>`
    (cdb_common.db), migrations as `cdb_migrate`, cdb-ops itself as `cdb_ops` (older services: `cdb`)."""
    return name == "cdb" or name.startswith(("cdb_", "cdb-"))


def visitor_session(line: str) -> str | None:
    """The application name of a Postgres log line from a session that is not the stack's, None for any
    other line. A visitor's mistakes (an ERROR or a FATAL of its named session: a typo in `psql`, a
    cancelled query) are not the stack's; what stays the stack's business: a PANIC (the whole server), the
    server's own processes, every stack session, and a FATAL of an unnamed session — a connection that
    failed before it said who it is (a wrong password, an unknown database), which may be a service's."""
    m = PG_SESSION.match(line)
    if m is None or stack_application(m["app"]) or m["level"] == "PANIC":
        return None
    if m["app"] == UNNAMED and m["level"] != "ERROR":
        return None  # only a statement error proves the session got past connecting: ours all have names
    return m["app"]


def error_lines(text: str) -> tuple[list[str], list[str]]:
    """(ERROR lines, database-connection error lines) of a log, a visitor's lines left out (see
    `scan_lines`)."""
    errors, db_errors, _ = scan_lines(text)
    return errors, db_errors


def scan_lines(text: str) -> tuple[list[str], list[str], list[str]]:
    """(ERROR lines, database-connection error lines, a visitor's error lines) of a log. Services log JSON
    lines with a `level`; Postgres and Redis log plain text."""
    errors, db_errors, visitors, _ = scan(text)
    return errors, db_errors, visitors


# A service says a dependency is back (cdb_common.backoff.Outage.up): "<dependency> reachable again"
RECOVERED = re.compile(r"reachable again$")


def scan(text: str) -> tuple[list[str], list[str], list[str], list[str]]:
    """`scan_lines` plus the outage errors a service has since recovered from. A service logs one ERROR
    when a dependency (Postgres, Redis) has been unreachable for a minute, tagged with the dependency,
    and a line when it is reachable again: an outage it came back from (a slow reboot, a database
    restart) is history to show, not a fault now; one with no recovery after it still fails."""
    errors: list[str] = []
    db_errors: list[str] = []
    visitors: list[str] = []
    recovered: list[str] = []
    open_outages: dict[str, list[str]] = {}  # dependency -> its outage lines not yet recovered from
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        dependency = None
        session = PG_SESSION.match(line)
        if session is not None:  # Postgres' own words for the level: a statement quoting 'ERROR' is none
            is_error, leveled = session["level"] in ("ERROR", "FATAL", "PANIC"), True
            if visitor_session(line) is not None:
                if is_error:
                    visitors.append(line)
                continue
        else:
            level = None
            if line.startswith("{"):
                try:
                    doc = json.loads(line)
                    level = str(doc.get("level", "")).upper()
                    dependency = doc.get("dependency")
                    if dependency and RECOVERED.search(str(doc.get("msg") or doc.get("message") or "")):
                        for old in open_outages.pop(str(dependency), []):
                            recovered.append(old)
                            errors.remove(old)
                            if old in db_errors:
                                db_errors.remove(old)
                        continue
                except (ValueError, AttributeError):
                    level = None
            is_error = level in ("ERROR", "CRITICAL") if level is not None else bool(PLAIN_ERROR.search(line))
            leveled = level is not None
        if is_error and BENIGN.search(line):
            continue
        if is_error:
            errors.append(line)
            if dependency:
                open_outages.setdefault(str(dependency), []).append(line)
        if DB_CONNECTION_ERROR.search(line) and (is_error or not leveled):
            db_errors.append(line)
    return errors, db_errors, visitors, recovered


def _repaired_at(ctx: CheckContext) -> dict[str, datetime]:
    """Container -> when rebuild last repaired it in place: the database's lines before its last schema
    repair (a dropped table re-created) are the errors that repair fixed, not a fault now."""
    import psycopg

    from cdb_ops.db.migrations import Migrator
    from cdb_ops.load.endpoints import postgres_conninfo, postgres_service

    try:
        pg = ctx.desired.services.get(postgres_service(ctx.desired))
        at = Migrator(postgres_conninfo(ctx.desired, ctx.settings), ctx.desired.project.schema_dir).last_repair()
    except (CdbError, psycopg.Error):
        return {}  # the postgres checks say why
    return {pg.container.name: at} if pg is not None and at is not None else {}


def check_logs(ctx: CheckContext) -> list[CheckResult]:
    out = []
    repaired = _repaired_at(ctx)
    for svc, c in service_containers(ctx):
        if c is None or c.started_at is None:
            continue
        since, since_what = c.started_at, "start"
        if repaired.get(svc.container.name, since) > since:
            since, since_what = repaired[svc.container.name], "the schema repair"
        text = ctx.redact(ctx.engine.logs(svc.container.name, tail=LOG_SCAN_LINES, since=since))
        errors, db_errors, visitors, recovered = scan(text)
        name = f"logs {svc.name}"
        facts = {
            "error_lines": len(errors),
            "db_connection_errors": len(db_errors),
            "first": errors[:3],
            "since": since.isoformat(),
            "visitor_error_lines": len(visitors),
            "visitor_first": visitors[:3],
            "recovered_outage_lines": len(recovered),
            "recovered_first": recovered[:3],
        }
        if db_errors:
            out.append(
                CheckResult(
                    name,
                    "fail",
                    f"{len(db_errors)} database-connection error(s) since {since_what}: {db_errors[0][:200]}",
                    "`cdb-ops doctor` checks network, DNS and pg_isready",
                    facts,
                )
            )
        elif errors:
            out.append(
                CheckResult(
                    name,
                    "fail",
                    f"{len(errors)} ERROR line(s) since {since_what}: {errors[0][:200]}",
                    f"`cdb-ops logs {svc.name} --errors` shows them all",
                    facts,
                )
            )
        else:
            detail = _clean(since_what, visitors)
            if recovered:
                detail += f"; info: recovered from {len(recovered)} dependency outage(s), e.g. {recovered[-1][:200]}"
            out.append(CheckResult(name, "pass", detail, facts=facts))
    return out


def _clean(since_what: str, visitors: list[str]) -> str:
    """A passing log check's line; a visitor's errors are information there, not a fault of the stack."""
    if not visitors:
        return f"no ERROR lines since {since_what}"
    apps = sorted({visitor_session(v) or "?" for v in visitors})
    return (
        f"no ERROR lines of the stack since {since_what}; info: {len(visitors)} error line(s) of other clients' "
        f"sessions ({', '.join(apps)}), e.g. {visitors[-1][:200]}"
    )
