"""The notifier service: Alertmanager's webhooks (POST /alerts, POST /watchdog) and the stack's trade
events in, messages to the trader's Apprise destinations (NOTIFY_URLS, a secret file) out.

Nothing in trading waits on it: fills are read in a consumer group of its own, states and the breaker
polled read-only from Postgres, and every send happens in a destination's own thread (delivery.py). With
no destination it runs all the same (the events are counted, /health says "no destination"), so a stack
without NOTIFY_URLS starts green. validate's alert path: POST /test-alert raises the gauge
`cdb_notify_test_alert` that the Prometheus rule CdbValidateAlertPath turns into an alert; when it comes
back through Alertmanager (or validate posts it to /alerts itself) its receipt is GET /test-alert/{id}."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import urllib.request
from collections.abc import Coroutine
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiohttp import web
from cdb_common import cron
from cdb_common.config import ConfigError, Settings, env_int, read_secret
from cdb_common.db import Unavailable, sleep_or_stop
from cdb_common.envrules import RULES
from cdb_common.events import STREAM_FILLS, Fill, now_ms
from cdb_common.health import HealthReport
from cdb_common.notifyrules import DEFAULT_TEXT, ModeError, parse_modes, split_urls, urls_problem
from cdb_common.runtime import BaseService
from cdb_common.streams import REDIS_ERRORS, Outputs, StreamConsumer
from prometheus_client import Counter, Gauge
from redis import exceptions as redis_errors

from . import watch
from .delivery import Dispatcher
from .formatting import Message, format_alerts, format_breaker, format_fill, format_state, format_summary

EVENTS = Counter("cdb_notify_events_total", "Events the notifier saw, by type and mode", ["event", "mode"])
TEST_ALERT = Gauge("cdb_notify_test_alert", "1 while validate's synthetic alert is raised", ["test_id"])
WEBHOOK_AT = Gauge("cdb_notify_last_webhook_timestamp_seconds", "When Alertmanager last called", ["kind"])
HEARTBEAT_OK = Gauge("cdb_notify_last_heartbeat_timestamp_seconds", "When the heartbeat URL last answered")
HEARTBEAT_FAILED = Counter("cdb_notify_heartbeat_failures_total", "Heartbeat calls that failed")
DESTINATIONS = Gauge("cdb_notify_destinations", "Destinations configured in NOTIFY_URLS (usable ones)")

GROUP = "notifier"
POLL_SECONDS = 2.0
FILL_MAX_AGE_MS = 3_600_000  # older fills (a group recreated at the stream's start) are counted, not sent
TEST_ALERT_SECONDS = 600  # the gauge is lowered after this long even when the alert never came back
TEST_ALERT_NAME = "CdbValidateAlertPath"
DIRECT_RECEIVER = "cdb-validate-direct"  # validate posts the alert itself when no Alertmanager runs
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _checked(settings: Settings, key: str) -> str:
    from cdb_common.envrules import problem

    rule = RULES[key]
    value = settings.get(key, "") or (rule.default or "")
    wrong = problem(rule, value) if value else None
    if wrong:
        raise ConfigError(f"{key}: {wrong} ({rule.help})")
    return value


class NotifierService(BaseService):
    name = "notifier"
    default_port = 8030

    def __init__(self, settings: Settings, log: logging.Logger) -> None:
        super().__init__(settings, log)
        env = settings.env
        urls_text = read_secret(env, "NOTIFY_URLS")
        if urls_problem(urls_text):  # never echoed: the value is a secret
            raise ConfigError(f"NOTIFY_URLS: {urls_problem(urls_text)}")
        try:
            self.modes = parse_modes(settings.get("NOTIFY_EVENTS", DEFAULT_TEXT))
        except ModeError as exc:
            raise ConfigError(f"NOTIFY_EVENTS: {exc}") from None
        self.per_minute = env_int(env, "NOTIFY_RATE_PER_MINUTE", 20)
        timeout = float(env_int(env, "NOTIFY_TIMEOUT_SECONDS", 10))
        self.summary_schedule = cron.parse(_checked(settings, "NOTIFY_SUMMARY_SCHEDULE"))
        self.heartbeat_url = read_secret(env, "NOTIFY_HEARTBEAT_URL").strip()
        self.heartbeat_seconds = env_int(env, "NOTIFY_HEARTBEAT_SECONDS", 300)
        self.dispatcher = Dispatcher(split_urls(urls_text), timeout, self.per_minute, log)
        DESTINATIONS.set(len(self.dispatcher.usable))
        self.fills = StreamConsumer(self.redis_bus, None, STREAM_FILLS, GROUP, self.handle_fill, log=log)
        self.breakers: dict[str, watch.Breaker] = {}
        self.states: dict[str, str] = {}
        self.last_state_id: int | None = None
        self.test_alerts: dict[str, float] = {}  # id -> monotonic time it was raised
        self.last_webhook: dict[str, str] = {}
        self.last_watchdog: float | None = None
        self.heartbeat: dict[str, Any] = {"last_ok_at": None, "failures": 0, "last_error": None}
        self.watch_error: str | None = None
        for method, path, handler in (
            ("POST", "/alerts", self.on_alerts),
            ("POST", "/watchdog", self.on_watchdog),
            ("POST", "/test-alert", self.on_test_alert),
            ("GET", "/test-alert/{test_id}", self.on_receipt),
            ("POST", "/summary", self.on_summary),
        ):
            self.http.add_route(method, path, handler)

    def loops(self) -> list[Coroutine[Any, Any, None]]:
        loops = [self.fills.run(self.stop), self.watch_books(), self.summaries(), self.expire_tests()]
        # a loop that ends stops the service (runtime.py): the heartbeat runs only when there is one
        return loops + ([self.heartbeats()] if self.heartbeat_url else [])

    async def open(self) -> None:
        self.dispatcher.start()
        # the group starts at the stream's end: a new notifier never re-announces the fills of the past
        try:
            await self.redis_bus.redis.xgroup_create(STREAM_FILLS, GROUP, id="$", mkstream=True)
        except redis_errors.ResponseError:
            pass  # BUSYGROUP: it exists and knows where it was
        except REDIS_ERRORS:
            pass  # Redis is not up yet: the consumer creates the group; FILL_MAX_AGE_MS keeps old fills quiet
        self.log.info(
            "notifier ready",
            extra={
                "destinations": [d.name for d in self.dispatcher.usable],
                "modes": self.modes,
                "heartbeat": bool(self.heartbeat_url),
            },
        )

    async def close(self) -> None:
        self.dispatcher.stop()

    # -- events -------------------------------------------------------------------------------------
    def emit(self, message: Message) -> None:
        mode = self.modes.get(message.kind, "on")
        EVENTS.labels(message.kind, mode).inc()
        if mode == "off":
            return
        queued = self.dispatcher.submit(message, mode)
        self.log.info(
            "event", extra={"kind": message.kind, "mode": mode, "title": message.title, "destinations": queued}
        )

    async def handle_fill(self, _entry_id: str, fields: dict[str, Any]) -> Outputs:
        fill = Fill.from_fields(fields)
        if fill.is_probe:
            return []
        message = format_fill(fill)
        if now_ms() - fill.produced_at > FILL_MAX_AGE_MS:
            EVENTS.labels(message.kind, "stale").inc()
            return []
        self.emit(message)
        return []

    async def watch_books(self) -> None:
        """book_states and daily_pnl, every POLL_SECONDS: trading-state changes and breaker trips/resets."""
        assert self.db is not None
        while not self.stop.is_set():
            try:
                async with self.db.connection() as conn:
                    if self.last_state_id is None:
                        rows = await (await conn.execute(watch.LAST_STATES)).fetchall()
                        self.states = {r[0]: r[1] for r in rows}
                        self.last_state_id = max((int(r[2]) for r in rows), default=0)
                    changes = await (await conn.execute(watch.STATES_SINCE, (self.last_state_id,))).fetchall()
                    breakers = watch.breakers_from(await (await conn.execute(watch.BREAKERS)).fetchall())
                self.watch_error = None
            except Unavailable as exc:
                self.watch_error = str(exc)[:200]
                await sleep_or_stop(self.stop, POLL_SECONDS * 2)
                continue
            except Exception as exc:  # noqa: BLE001 - e.g. a table not migrated yet: said in /health, retried
                self.watch_error = f"{type(exc).__name__}: {str(exc)[:200]}"
                await sleep_or_stop(self.stop, POLL_SECONDS * 5)
                continue
            for state_id, book, state, reason, by, cancelled in changes:
                self.last_state_id = int(state_id)
                before = self.states.get(book, "ACTIVE")
                self.states[book] = state
                if state != before:
                    self.emit(format_state(book, before, state, reason, by, int(cancelled)))
            for book, now in breakers.items():
                change = watch.breaker_change(self.breakers.get(book), now)
                self.breakers[book] = now
                if change is not None:
                    await self.emit_breaker(book, now, change == "tripped")
            await sleep_or_stop(self.stop, POLL_SECONDS)

    async def emit_breaker(self, book: str, now: watch.Breaker, tripped: bool) -> None:
        """With the tripping decision's numbers; daily_pnl's own (execution's marks) when it cannot be read."""
        limit = self.settings.limits.max_daily_drawdown_pct
        start, equity, at = now.start, now.low, ""
        down = (start - equity) / start * 100 if start > 0 else Decimal(0)
        if tripped and self.db is not None:
            try:
                async with self.db.connection() as conn:
                    row = await (await conn.execute(watch.TRIP_DECISION, (book, now.day))).fetchone()
                if row is not None:
                    equity, down, start, limit = Decimal(row[0]), Decimal(row[1]), Decimal(row[2]), Decimal(row[3])
                    at = f"the {row[4]} {row[5]} decision"
            except Unavailable:
                pass  # told with daily_pnl's numbers: late is worse than approximate
        self.emit(format_breaker(book, tripped, start, equity, down, limit, now.day, at))

    async def send_summary(self) -> Message:
        assert self.db is not None
        at = datetime.now(UTC)
        since = watch.summary_since(at)
        async with self.db.connection() as conn:
            rows = await (await conn.execute(watch.SUMMARY, {"since": since, "books": list(watch.BOOKS)})).fetchall()
        message = format_summary(since.strftime("%Y-%m-%d %H:%M UTC"), watch.summary_books(rows))
        self.emit(message)
        return message

    async def summaries(self) -> None:
        while not self.stop.is_set():
            left = (self.summary_schedule.next_after(datetime.now(UTC)) - datetime.now(UTC)).total_seconds()
            try:
                await asyncio.wait_for(self.stop.wait(), timeout=max(1.0, min(left, 3600.0)))
                return
            except TimeoutError:
                pass
            if left > 3600.0 or self.modes.get("summary") == "off":
                continue
            try:
                await self.send_summary()
            except Exception as exc:  # noqa: BLE001 - a missed summary is logged, never fatal
                self.log.warning("daily summary failed", extra={"error": f"{type(exc).__name__}: {exc}"[:300]})

    # -- heartbeat (dead-man's switch) --------------------------------------------------------------
    def heartbeat_due(self) -> bool:
        """Only while this service is healthy and — once Alertmanager's Watchdog has been seen — while it
        keeps coming: a silent machine, a dead notifier or a dead alert path all stop the heartbeat."""
        if self.health().status == "unhealthy":
            return False
        if self.last_watchdog is None:
            return True
        return time.monotonic() - self.last_watchdog < 3 * max(self.heartbeat_seconds, 60)

    async def heartbeats(self) -> None:
        while not self.stop.is_set():
            if self.heartbeat_due():
                try:
                    await asyncio.to_thread(_get, self.heartbeat_url, 10.0)
                    self.heartbeat["last_ok_at"] = datetime.now(UTC).isoformat(timespec="seconds")
                    HEARTBEAT_OK.set(time.time())
                except Exception as exc:  # noqa: BLE001 - counted and shown; the URL is never in the message
                    HEARTBEAT_FAILED.inc()
                    self.heartbeat["failures"] += 1
                    self.heartbeat["last_error"] = type(exc).__name__
                    self.log.warning("heartbeat failed", extra={"error": type(exc).__name__})
            await sleep_or_stop(self.stop, self.heartbeat_seconds)

    # -- HTTP ---------------------------------------------------------------------------------------
    async def _json(self, request: web.Request) -> Any:
        try:
            return await request.json()
        except (ValueError, UnicodeDecodeError):
            raise web.HTTPBadRequest(text="the body is not JSON") from None

    async def on_alerts(self, request: web.Request) -> web.Response:
        """Alertmanager's webhook (version 4): one notification = one group, firing or resolved."""
        payload = await self._json(request)
        if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
            raise web.HTTPBadRequest(text="not an Alertmanager webhook (version 4): no alerts list")
        via = "direct" if payload.get("receiver") == DIRECT_RECEIVER else "alertmanager"
        self.last_webhook["alerts"] = datetime.now(UTC).isoformat(timespec="seconds")
        WEBHOOK_AT.labels("alerts").set(time.time())
        alerts = [a for a in payload["alerts"] if isinstance(a, dict) and isinstance(a.get("labels") or {}, dict)]
        tests = [a for a in alerts if (a.get("labels") or {}).get("alertname") == TEST_ALERT_NAME]
        others = [a for a in alerts if a not in tests]
        for alert in tests:
            test_id = str((alert.get("labels") or {}).get("test_id") or "")
            if alert.get("status") == "resolved" or not _ID.match(test_id) or test_id in self.dispatcher.receipts:
                continue  # only the first arrival is delivered; its resolution is nobody's news
            self.dispatcher.open_receipt(test_id, via)
            message = format_alerts({**payload, "status": "firing", "alerts": [alert]}, test_id=test_id)
            self.dispatcher.submit(message, "on")
            self._lower(test_id)
        if others:
            self.emit(format_alerts({**payload, "alerts": others}))
        return web.json_response({"ok": True, "alerts": len(others), "tests": len(tests)})

    async def on_watchdog(self, request: web.Request) -> web.Response:
        await self._json(request)
        self.last_watchdog = time.monotonic()
        self.last_webhook["watchdog"] = datetime.now(UTC).isoformat(timespec="seconds")
        WEBHOOK_AT.labels("watchdog").set(time.time())
        return web.json_response({"ok": True})

    async def on_test_alert(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        test_id = str((body or {}).get("id") or "") if isinstance(body, dict) else ""
        if not _ID.match(test_id):
            raise web.HTTPBadRequest(text="give an id of 1-64 letters, digits, - or _")
        self.test_alerts[test_id] = time.monotonic()
        TEST_ALERT.labels(test_id).set(1)
        return web.json_response(
            {"id": test_id, "destinations": len(self.dispatcher.usable), "metric": "cdb_notify_test_alert"},
            status=202,
        )

    async def on_receipt(self, request: web.Request) -> web.Response:
        test_id = request.match_info["test_id"]
        receipt = self.dispatcher.receipts.get(test_id)
        if receipt is None:
            raised = test_id in self.test_alerts
            return web.json_response({"id": test_id, "received": False, "raised": raised}, status=404)
        expected = [d.name for d in self.dispatcher.usable]
        return web.json_response(
            {
                **receipt.to_dict(),
                "received": True,
                "expected": expected,
                "complete": set(receipt.destinations) >= set(expected),
            }
        )

    async def on_summary(self, _request: web.Request) -> web.Response:
        try:
            message = await self.send_summary()
        except Unavailable as exc:
            raise web.HTTPServiceUnavailable(text=str(exc)[:200]) from None
        return web.json_response({"title": message.title, "body": message.body})

    def _lower(self, test_id: str) -> None:
        if self.test_alerts.pop(test_id, None) is not None:
            with contextlib.suppress(KeyError):
                TEST_ALERT.remove(test_id)

    async def expire_tests(self) -> None:
        while not self.stop.is_set():
            now = time.monotonic()
            for test_id, raised in list(self.test_alerts.items()):
                if now - raised > TEST_ALERT_SECONDS:
                    self._lower(test_id)
            await sleep_or_stop(self.stop, 10.0)

    def add_checks(self, report: HealthReport) -> None:
        d = self.dispatcher
        report.checks["destinations"] = {x.name: x.facts() for x in d.destinations}
        report.checks["destination_count"] = len(d.usable)
        report.checks["failures"] = sum(x.failed for x in d.destinations)
        report.checks["dropped"] = sum(x.dropped for x in d.destinations)
        report.checks["modes"] = self.modes
        report.checks["rate_per_minute"] = self.per_minute
        report.checks["heartbeat"] = {"configured": bool(self.heartbeat_url), **self.heartbeat}
        report.checks["last_webhook"] = self.last_webhook
        report.checks["fills_handled"] = self.fills.handled
        report.checks["watch_error"] = self.watch_error
        hung = d.hung()
        report.checks["hung"] = hung
        failing = [x.name for x in d.usable if x.last_failure_at and (x.last_ok_at or "") < x.last_failure_at]
        report.checks["failing"] = failing
        report.checks["invalid"] = [x.name for x in d.destinations if not x.valid]
        # Facts only, never a worse status: readiness waits for "ok", and a destination's trouble must never
        # keep the stack from starting (freqtrade#4074) nor get the notifier restarted. validate's
        # `notifications` check and `status` read these facts and warn.


def _get(url: str, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - the trader's own URL
        answer.read(1024)
