"""Which log lines make `validate` fail: ERROR lines of JSON services, Postgres/Redis errors, and
database-connection errors; not the FATALs a starting Postgres gives to early clients."""

from __future__ import annotations

from cdb_ops.checks.logscan import error_lines


def test_json_service_lines_are_judged_by_level():
    log = "\n".join(
        [
            '{"ts": "t", "level": "INFO", "service": "signal", "msg": "started"}',
            '{"ts": "t", "level": "WARNING", "service": "signal", "msg": "database connection lost, retrying"}',
            '{"ts": "t", "level": "ERROR", "service": "signal", "msg": "database connection failed for 61 s"}',
            '{"ts": "t", "level": "INFO", "service": "signal", "msg": "the word ERROR inside a message"}',
        ]
    )
    errors, db = error_lines(log)
    assert len(errors) == 1 and "61 s" in errors[0]
    assert len(db) == 1  # the WARNING while retrying is not a failure; the ERROR after 60 s is


def test_plain_text_logs():
    log = "\n".join(
        [
            "2026-11-24 09:44:59.763 UTC [19] FATAL:  the database system is starting up",
            "2026-11-24 10:10:25.816 UTC [58] ERROR:  could not serialize access due to concurrent update",
            "2026-11-24 10:11:00.000 UTC [61] ERROR:  canceling statement due to lock timeout",  # retention steps aside
            "2026-11-24 11:00:00.100 UTC [30] FATAL:  the database system is not yet accepting connections",
            "2026-11-24 09:45:00.001 UTC [1] LOG:  database system is ready to accept connections",
            '2026-11-24 09:46:00.000 UTC [55] ERROR:  relation "signals" does not exist',
            '2026-11-24 09:47:00.000 UTC [56] FATAL:  password authentication failed for user "claire"',
        ]
    )
    errors, db = error_lines(log)
    assert [e.split("] ")[1][:6] for e in errors] == ["ERROR:", "FATAL:"]
    assert len(db) == 1 and "password authentication failed" in db[0]


def test_clean_log():
    assert error_lines("1:C 24 Nov 2026 Ready to accept connections tcp\n\n") == ([], [])


# Real lines of the stack's Postgres 15 with log_line_prefix='%m [%p] %q[app=%a] ' (playbooks/stack.yaml),
# written by sessions as each client named itself (psycopg with application_name, or none).
VISITOR_LOG = """\
2026-12-07 09:07:24.663 UTC [1] LOG:  database system is ready to accept connections
2026-12-07 09:07:28.776 UTC [50] [app=psql] ERROR:  relation "nosuch" does not exist at character 15
2026-12-07 09:07:28.776 UTC [50] [app=psql] STATEMENT:  select x from nosuch
2026-12-07 09:07:28.882 UTC [52] [app=[unknown]] ERROR:  relation "nosuch" does not exist at character 15
2026-12-07 09:07:28.882 UTC [52] [app=[unknown]] STATEMENT:  select x from nosuch
2026-12-07 09:07:29.100 UTC [57] [app=DBeaver 23.1.0 - Main] ERROR:  column "x" does not exist at character 8
2026-12-07 09:07:29.200 UTC [58] [app=psql] FATAL:  terminating connection due to idle-in-transaction timeout
2026-12-07 09:07:29.300 UTC [59] [app=psql] STATEMENT:  select 'an ERROR in quotes'
"""


def test_a_visitors_errors_are_information_not_faults():
    from cdb_ops.checks.logscan import scan_lines

    errors, db, visitors = scan_lines(VISITOR_LOG)
    assert errors == [] and db == []
    assert len(visitors) == 4  # the two ERRORs of psql, the unnamed session's, DBeaver's, psql's FATAL
    assert all("STATEMENT" not in v for v in visitors)
    assert error_lines(VISITOR_LOG) == ([], [])  # `logs --errors` and validate agree


def test_the_stacks_own_sessions_still_fail():
    from cdb_ops.checks.logscan import scan_lines

    log = "\n".join(
        [
            '2026-12-07 09:07:28.832 UTC [51] [app=cdb_signal] ERROR:  relation "nosuch" does not exist at character 15',  # noqa: E501 - a real log line
            "2026-12-07 09:07:28.832 UTC [51] [app=cdb_signal] STATEMENT:  select x from nosuch",
            '2026-12-07 09:07:30.000 UTC [60] [app=cdb_migrate] ERROR:  syntax error at or near "CREAT"',
            "2026-12-07 09:07:31.000 UTC [61] [app=cdb_ops] ERROR:  permission denied for table trades",
            '2026-12-07 09:07:32.000 UTC [62] [app=cdb] ERROR:  duplicate key value violates unique constraint "x"',
        ]
    )
    errors, db, visitors = scan_lines(log)
    assert [e.split("[app=")[1].split("]")[0] for e in errors] == ["cdb_signal", "cdb_migrate", "cdb_ops", "cdb"]
    assert visitors == [] and db == []


def test_connecting_failures_and_the_server_itself_stay_faults():
    """A session that fails while connecting has no name yet ([unknown]): it may be a service's, so a wrong
    password or an unknown database still fails; so do a PANIC (the whole server, whoever's session) and
    lines of the server's own processes (no marker: %q)."""
    from cdb_ops.checks.logscan import scan_lines

    log = "\n".join(
        [
            '2026-12-07 09:07:28.922 UTC [53] [app=[unknown]] FATAL:  password authentication failed for user "u"',
            '2026-12-07 09:07:28.922 UTC [53] [app=[unknown]] DETAIL:  Connection matched pg_hba.conf line 101: "host all all all scram-sha-256"',  # noqa: E501 - a real log line
            '2026-12-07 09:07:28.967 UTC [54] [app=[unknown]] FATAL:  database "nosuchdb" does not exist',
            '2026-12-07 09:07:29.000 UTC [55] [app=psql] PANIC:  could not write to file "pg_wal/xlogtemp.55": No space left on device',  # noqa: E501 - a real log line
            "2026-12-07 09:07:29.100 UTC [40] ERROR:  could not write block 7 of relation base/16384/16385",
            "2026-12-07 09:07:29.200 UTC [19] [app=[unknown]] FATAL:  the database system is starting up",
        ]
    )
    errors, db, visitors = scan_lines(log)
    assert visitors == []
    assert len(errors) == 4 and "PANIC" in errors[2] and "relation base" in errors[3]
    assert len(db) == 1 and "password authentication failed" in db[0]


def test_lines_of_other_programs_are_judged_as_before():
    """Redis, the entrypoint and JSON services carry no session marker: their levels decide, as ever."""
    from cdb_ops.checks.logscan import scan_lines, visitor_session

    log = '{"level": "ERROR", "service": "risk", "msg": "boom [app=psql] ERROR: x"}\n[entrypoint] error: bad'
    assert scan_lines(log)[2] == [] and len(scan_lines(log)[0]) == 1
    assert visitor_session("2026-12-07 09:07:29.000 UTC [55] [app=psql] ERROR:  x") == "psql"
    assert visitor_session("2026-12-07 09:07:29.000 UTC [55] [app=cdb_risk] ERROR:  x") is None


def _jl(level: str, msg: str, **extra: object) -> str:
    import json

    return json.dumps({"ts": "2026-12-07T09:00:00Z", "level": level, "service": "signal", "msg": msg, **extra})


def test_an_outage_the_service_recovered_from_is_history_not_a_fault() -> None:
    """After a slow reboot or a database restart a service logs one ERROR (its dependency unreachable for a
    minute) and later "reachable again": validate shows that as information, and fails only while an
    outage has no recovery after it — also for a second outage after a first recovered one."""
    from cdb_ops.checks.logscan import scan

    down = _jl("ERROR", "database connection failing for 61 s: connection refused", dependency="postgres")
    back = _jl("WARNING", "postgres reachable again", dependency="postgres")
    redis_down = _jl("ERROR", "redis connection failing for 70 s: refused", dependency="redis")
    other = _jl("ERROR", "could not handle signal 42")
    errors, db, _, recovered = scan("\n".join([down, back]))
    assert (errors, db, recovered) == ([], [], [down])
    errors, db, _, recovered = scan("\n".join([down, back, down]))  # down again, not back yet
    assert errors == [down] and db == [down] and recovered == [down]
    errors, _, _, recovered = scan("\n".join([redis_down, back, other]))  # postgres' recovery is not redis'
    assert errors == [redis_down, other] and recovered == []
    errors, _, _, recovered = scan("\n".join([back, down]))  # a recovery before the outage recovers nothing
    assert errors == [down] and recovered == []
