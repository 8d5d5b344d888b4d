"""validate's end-to-end probe: a synthetic market move followed through the real trading pipeline."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from typing import Any

from cdb_ops.checks.context import CheckContext
from cdb_ops.checks.probes import HttpError, http_request
from cdb_ops.db.probe_rows import DEFAULT_RETENTION_HOURS, prune_probe_rows
from cdb_ops.db.trading_state import has_states, read_state
from cdb_ops.load.endpoints import host_address, postgres_conninfo
from cdb_ops.model.results import CheckResult


def check_probe(ctx: CheckContext) -> list[CheckResult]:
    """Inject a synthetic market move at the screener and follow it through signal, risk decision,
    order and trade in Postgres. Probe rows are flagged and live in portfolio 'probe'."""
    import psycopg
    from psycopg.rows import dict_row

    screener = next((s for s in ctx.desired.services.values() if s.spec.role == "screener"), None)
    if screener is None or not ctx.options.probe:
        return [
            CheckResult(
                "pipeline probe",
                "skip",
                "no screener in the selected services" if screener is None else "skipped (--no-probe)",
            )
        ]
    host, port = host_address(screener, None)
    threshold = Decimal(ctx.settings.get("SIGNAL_THRESHOLD") or "3")
    move = max(Decimal(5), threshold * 2)
    probe_id = uuid.uuid4()
    started = time.monotonic()
    try:
        r = http_request(
            "POST",
            f"http://{host}:{port}/probe",
            json_body={"probe_id": str(probe_id), "move_pct": float(move)},
            timeout=5.0,
            ok_only=True,
        )
        symbol = r.json()["symbol"]
    except (HttpError, KeyError, TypeError, ValueError) as exc:
        return [
            CheckResult(
                "pipeline probe",
                "fail",
                f"the screener did not accept the probe: {exc}",
                f"is {screener.container.name} healthy? `cdb-ops status`",
            )
        ]
    stages = ["signal", "risk decision", "order", "trade"]
    query = """
        SELECT s.signal_id, r.decision, r.reason, o.order_id, t.trade_id, t.price, t.portfolio
          FROM signals s
          LEFT JOIN risk_events r ON r.signal_id = s.signal_id
          LEFT JOIN orders o ON o.risk_event_id = r.risk_event_id
          LEFT JOIN trades t ON t.order_id = o.order_id
         WHERE s.symbol = %s AND s.is_probe
    """
    reached = -1
    row: dict[str, Any] | None = None
    deadline = started + ctx.options.probe_timeout
    retention = Decimal(ctx.settings.get("CDB_PROBE_RETENTION_HOURS") or DEFAULT_RETENTION_HOURS)
    conninfo = postgres_conninfo(ctx.desired, ctx.settings)
    try:
        with psycopg.connect(**conninfo, connect_timeout=3, autocommit=True, row_factory=dict_row) as conn:
            while time.monotonic() < deadline:
                row = conn.execute(query, (symbol,)).fetchone()
                if row:
                    reached = sum(row[k] is not None for k in ("decision", "order_id", "trade_id"))
                    if row["decision"] == "REJECTED" or reached == 3:
                        break
                time.sleep(0.02)  # the pipeline takes tens of milliseconds: look often, so the probe ends soon after
            took = time.monotonic() - started
            pruned = prune_probe_rows(conn, retention)
            book_state = read_state(conn, ctx.desired.feed) if ctx.desired.feed and has_states(conn) else None
    except psycopg.OperationalError as exc:
        # the database went away while the probe ran: a fault of the stack to report, not a bug of cdb-ops
        return [
            CheckResult(
                "pipeline probe",
                "fail",
                f"Postgres could not be read during the probe ({str(exc).strip().splitlines()[0]})",
                "is the database up? `cdb-ops status`, then `cdb-ops logs postgres`",
                {"probe_id": str(probe_id), "symbol": symbol},
            )
        ]
    facts = {
        "probe_id": str(probe_id),
        "symbol": symbol,
        "move_pct": float(move),
        "seconds": round(took, 3),
        "reached": stages[reached] if reached >= 0 else None,
        "retention_hours": float(retention),
        "pruned": pruned,  # probe rows older than the retention, deleted now
    }
    if row is not None and row["decision"] == "REJECTED":
        facts["reason"] = row["reason"]
        return [
            CheckResult(
                "pipeline probe",
                "fail",
                f"risk manager rejected the probe ({row['reason']})",
                "the probe trades in its own portfolio; see `cdb-ops logs risk`",
                facts,
            )
        ]
    if reached == 3:
        facts["portfolio"] = row["portfolio"] if row else None
        facts["active_book"] = ctx.desired.feed  # the feed's book the stack trades in; the probe is in neither
        facts["active_book_state"] = book_state.state if book_state else None  # the probe's book is never halted
        return [
            CheckResult(
                "pipeline probe",
                "pass",
                f"screener → signal → risk → execution in {took * 1000:.0f} ms ({symbol}, book 'probe'; "
                f"the stack trades in the {ctx.desired.feed} book"
                + (f", which is {book_state.summary}" if book_state and book_state.state != "ACTIVE" else "")
                + ")",
                facts=facts,
            )
        ]
    where = stages[reached + 1]
    owner = {"signal": "signal", "risk decision": "risk", "order": "risk", "trade": "execution"}[where]
    return [
        CheckResult(
            "pipeline probe",
            "fail",
            f"no {where} after {ctx.options.probe_timeout:.0f} s"
            + (f" (reached: {stages[reached]})" if reached >= 0 else ""),
            f"see `cdb-ops logs {owner}`",
            facts,
        )
    ]
