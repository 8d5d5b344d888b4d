"""The trader's notifications as cdb-ops sees them: `status`'s line on the notifier (destinations, failed
and dropped sends, read from its /health on the published port), `init`'s and validate's word when no
destination is set, and validate's `notifications` check — which, in `cdb-ops validate` (never in a
rebuild's validate phase, whose time is benchmarked), proves the alert path end to end: a synthetic alert
raised at the notifier travels rule (CdbValidateAlertPath) → Alertmanager → notifier → every destination,
and the notifier's receipt says which destinations accepted it. Without a running Alertmanager and
Prometheus the alert is posted to the notifier's webhook directly, and the result says which hops that
proved. docs/notifications.md."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from cdb_ops.engine.socket_reader import http_get
from cdb_ops.model.status import footer_lines

if TYPE_CHECKING:  # the quick `status` path imports this module: nothing heavy at import time
    from cdb_ops.checks.context import CheckContext
    from cdb_ops.model.results import CheckResult
    from cdb_ops.model.status import StatusRow

ROLE = "notify"
TEST_ALERT = "CdbValidateAlertPath"
DIRECT_RECEIVER = "cdb-validate-direct"  # the notifier tells a direct post from Alertmanager's by it
HOW_TO_ADD = (
    "add NOTIFY_URLS=<Apprise URLs, comma-separated> to .env, e.g. tgram://BOT_TOKEN/CHAT_ID or "
    "ntfys://ntfy.sh/YOUR-TOPIC (docs/notifications.md), then `cdb-ops rebuild`"
)
NO_DESTINATION = "no notification destination: alerts and trade events reach nobody"
_PORT = re.compile(r"^(?P<bind>[^>]*):(?P<host>\d+)->(?P<container>\d+)/tcp$")


def destination_hint(values: Mapping[str, str]) -> str | None:
    """init's one line when .env sets no destination (None when it does)."""
    if (values.get("NOTIFY_URLS") or "").strip():
        return None
    return f"{NO_DESTINATION} — {HOW_TO_ADD}"


def _get_json(url: str, timeout: float, body: Any = None) -> tuple[int, Any]:
    import urllib.error
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - the stack's own port
            return r.status, json.loads(r.read(256 * 1024) or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read(64 * 1024) or b"null")
        except ValueError:
            return exc.code, None


# -- status ------------------------------------------------------------------------------------------


def notify_summary(rows: list[StatusRow], timeout: float = 0.5) -> dict[str, Any] | None:
    """The notifier's state for `status` (None when the stack has no notifier): its /health, boiled down."""
    row = next((r for r in rows if r.role == ROLE), None)
    if row is None:
        return None
    if row.state != "running":
        return {"running": False}
    port = next((m for m in (_PORT.match(p) for p in row.ports) if m), None)
    if port is None:
        return {"running": True, "error": "publishes no port"}
    bind = port["bind"] if port["bind"] not in ("0.0.0.0", "", "::") else "127.0.0.1"
    try:
        _code, raw = http_get((bind, int(port["host"])), "/health", timeout)
        body = json.loads(raw or b"null")
    except (OSError, ValueError, IndexError) as exc:
        return {"running": True, "error": f"/health did not answer ({type(exc).__name__})"}
    checks = (body or {}).get("checks") or {}
    dests = checks.get("destinations") or {}
    return {
        "running": True,
        "destinations": len([d for d in dests.values() if d.get("valid")]),
        "sent": sum(int(d.get("sent") or 0) for d in dests.values()),
        "failed": sum(int(d.get("failed") or 0) for d in dests.values()),
        "dropped": sum(int(d.get("dropped") or 0) for d in dests.values()),
        "failing": list(checks.get("failing") or []),
        "hung": list(checks.get("hung") or []),
        "last_errors": {n: d.get("last_error") for n, d in dests.items() if d.get("last_error")},
        "heartbeat": checks.get("heartbeat"),
    }


def notify_lines(summary: dict[str, Any] | None) -> list[str]:
    """The status footer's notification lines (plain text)."""
    if summary is None:
        return []
    if not summary.get("running"):
        return ["notifications: the notifier is not running — nothing reaches the trader (`cdb-ops rebuild`)"]
    if summary.get("error"):
        return [f"notifications: {summary['error']}"]
    if not summary["destinations"]:
        return [f"notifications: {NO_DESTINATION}", *footer_lines("  fix:", HOW_TO_ADD.split(" "), sep=" ")]
    line = (
        f"notifications: {summary['destinations']} destination(s), {summary['sent']} sent, "
        f"{summary['failed']} failed, {summary['dropped']} dropped"
    )
    out = [line]
    for name in summary["failing"] + [h for h in summary["hung"] if h not in summary["failing"]]:
        why = summary["last_errors"].get(name) or "no answer within the timeout"
        out.append(f"  {name} FAILING: {why} — `cdb-ops logs notifier`")
    heartbeat = summary.get("heartbeat") or {}
    if heartbeat.get("configured") and heartbeat.get("failures"):
        out.append(f"  heartbeat: {heartbeat['failures']} failed call(s), last ok {heartbeat.get('last_ok_at')}")
    return out


# -- validate ----------------------------------------------------------------------------------------


def _running(ctx: CheckContext, name: str) -> bool:
    return any(name in c.name and c.running for c in ctx.containers.values())


def _wait_receipt(base: str, test_id: str, deadline: float, sleep: Callable[[float], None]) -> dict[str, Any] | None:
    """The notifier's receipt once every destination answered (or the last one seen at the deadline)."""
    last = None
    while True:
        code, body = _get_json(f"{base}/test-alert/{test_id}", 2.0)
        if code == 200 and isinstance(body, dict):
            last = body
            if body.get("complete"):
                return body
        if time.monotonic() >= deadline:
            return last
        sleep(0.5)


def direct_payload(test_id: str) -> dict[str, Any]:
    """What Alertmanager would post for the synthetic alert (webhook version 4)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    labels = {"alertname": TEST_ALERT, "test_id": test_id, "severity": "none"}  # as the rule sets it
    return {
        "version": "4",
        "status": "firing",
        "receiver": DIRECT_RECEIVER,
        "groupKey": f"{{}}:{{test_id={test_id!r}}}",
        "groupLabels": {"test_id": test_id},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": f"validate: the alert path works (test {test_id}, posted directly)"},
                "startsAt": now,
                "endsAt": "0001-01-01T00:00:00Z",
            }
        ],
    }


def _verdict(receipt: dict[str, Any] | None, hops: str, facts: dict[str, Any]) -> CheckResult:
    from cdb_ops.model.results import CheckResult  # here: the quick status path needs no results

    name = "notifications"
    dests = (receipt or {}).get("destinations") or {}
    took = [n for n, d in dests.items() if d.get("ok")]
    refused = {n: d.get("error") for n, d in dests.items() if not d.get("ok")}
    facts.update({"receipt": receipt, "accepted": took, "refused": refused})
    silent = [n for n in (receipt or {}).get("expected") or [] if n not in dests]
    if refused or silent:
        why = "; ".join([f"{n}: {e}" for n, e in refused.items()] + [f"{n}: no answer yet" for n in silent])
        return CheckResult(
            name,
            "warn" if took else "fail",
            f"{hops}; {len(took)} of {len(took) + len(refused) + len(silent)} destination(s) accepted — {why}",
            "check the failing URL in NOTIFY_URLS (token, chat, host) and `cdb-ops logs notifier`",
            facts,
        )
    return CheckResult(name, "pass", f"{hops}; accepted by {', '.join(took)}", facts=facts)


def check_notifications(ctx: CheckContext, sleep: Callable[[float], None] = time.sleep) -> list[CheckResult]:
    from cdb_ops.load.endpoints import host_address
    from cdb_ops.model.results import CheckResult  # here: the quick status path needs no results

    svc = next((s for s in ctx.desired.services.values() if s.spec.role == ROLE), None)
    if svc is None:
        return [CheckResult("notifications", "skip", "no notifier in the selected services")]
    host, port = host_address(svc, None)
    base = f"http://{host}:{port}"
    try:
        _code, health = _get_json(f"{base}/health", 3.0)
    except (OSError, ValueError) as exc:
        return [
            CheckResult(
                "notifications",
                "fail",
                f"the notifier's /health did not answer ({type(exc).__name__})",
                f"is {svc.container.name} running? `cdb-ops status`",
            )
        ]
    checks = (health or {}).get("checks") or {}
    count = int(checks.get("destination_count") or 0)
    facts: dict[str, Any] = {"destinations": count, "failures": checks.get("failures")}
    facts["dropped"] = checks.get("dropped")
    if count == 0:
        invalid = checks.get("invalid") or []
        detail = NO_DESTINATION + (f" ({len(invalid)} URL(s) Apprise does not know)" if invalid else "")
        return [CheckResult("notifications", "warn", detail, HOW_TO_ADD, facts)]
    invalid = list(checks.get("invalid") or [])
    if invalid:  # the trader believes these reach him: said on every validate, rebuild's too
        return [
            CheckResult(
                "notifications",
                "warn",
                f"{len(invalid)} URL(s) in NOTIFY_URLS Apprise does not know ({', '.join(invalid)}): they get nothing",
                "fix those entries of NOTIFY_URLS (see https://github.com/caronc/apprise/wiki for each scheme)",
                facts,
            )
        ]
    if not ctx.options.alert_path:
        failing = list(dict.fromkeys([*(checks.get("failing") or []), *(checks.get("hung") or [])]))
        if failing:
            return [
                CheckResult(
                    "notifications",
                    "warn",
                    f"{count} destination(s); failing now: {', '.join(failing)}",
                    "see `cdb-ops status` and `cdb-ops logs notifier`",
                    facts,
                )
            ]
        return [CheckResult("notifications", "pass", f"{count} destination(s), none failing", facts=facts)]
    return [prove_path(ctx, base, facts, sleep)]


def prove_path(ctx: CheckContext, base: str, facts: dict[str, Any], sleep: Callable[[float], None]) -> CheckResult:
    """Raise the synthetic alert and follow it; fall back to the direct webhook and say what was proven."""
    import uuid  # here, like CheckResult

    from cdb_ops.model.results import CheckResult  # here: the quick status path needs no results

    test_id = uuid.uuid4().hex[:16]
    facts["test_id"] = test_id
    down = [name for name in ("Prometheus", "Alertmanager") if not _running(ctx, name.lower())]
    alerting = not down
    if alerting:
        code, _ = _get_json(f"{base}/test-alert", 3.0, {"id": test_id})
        if code == 202:
            receipt = _wait_receipt(base, test_id, time.monotonic() + ctx.options.alert_path_timeout, sleep)
            if receipt is not None and receipt.get("via") == "alertmanager":
                facts["hops"] = ["rule", "alertmanager", "notifier", "destination"]
                return _verdict(receipt, "rule → Alertmanager → notifier → destination proven", facts)
        why = f"the alert did not come back through Alertmanager within {ctx.options.alert_path_timeout:.0f} s"
    else:
        why = f"{' and '.join(down)} not running (rule → Alertmanager not proven)"
    _get_json(f"{base}/alerts", 3.0, direct_payload(test_id))
    receipt = _wait_receipt(base, test_id, time.monotonic() + 30.0, sleep)
    facts["hops"] = ["notifier", "destination"]
    result = _verdict(receipt, f"webhook → notifier → destination proven; {why}", facts)
    if alerting and result.status == "pass":  # the part through Alertmanager failed: the trader must know
        result = CheckResult(
            result.name, "warn", result.detail, "see `cdb-ops logs alertmanager` and `cdb-ops logs prometheus`", facts
        )
    return result
