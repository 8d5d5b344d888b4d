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
