"""Delivery to the trader's destinations: one bounded queue and one worker thread per destination, so a
destination that fails or hangs delays only its own messages — never the event loop that reads the
stack's events, never trading (which never waits on the notifier at all), never another destination.

A send is bounded by Apprise's socket timeouts (NOTIFY_TIMEOUT_SECONDS for connect and read); a full
queue drops the new message into the held summary (counted). Failures are counted per destination
(metrics, /health). Destinations are named by scheme and position ("tgram#1"): a URL is a secret (it
holds tokens) and is never logged — errors Apprise reports are cleaned of every part of the URL."""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cdb_common.notifyrules import clean, delivery_for, quiet_url, scheme_of
from prometheus_client import Counter, Gauge

from .formatting import Message
from .ratelimit import Held, RateLimiter

SENT = Counter("cdb_notify_sent_total", "Messages a destination accepted", ["destination"])
FAILED = Counter("cdb_notify_failures_total", "Messages a destination refused or did not answer", ["destination"])
DROPPED = Counter("cdb_notify_dropped_total", "Messages not queued: the destination's queue was full", ["destination"])
HELD = Counter("cdb_notify_held_total", "Messages the rate limit held back (sent later as one)", ["destination"])
QUEUED = Gauge("cdb_notify_queue_depth", "Messages waiting for a destination", ["destination"])
RECORDED = Counter("cdb_notify_recorded_only_total", "Silent events a destination has no quiet mode for", ["event"])

QUEUE_SIZE = 100


class _Capture(logging.Handler):
    """Apprise says why a send failed only in its log: keep the last warning of this thread's send."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        self.local.last = record.getMessage()


CAPTURE = _Capture()
_apprise_log = logging.getLogger("apprise")
_apprise_log.addHandler(CAPTURE)
_apprise_log.propagate = False  # its lines may carry a URL's parts: they reach our log only cleaned


@dataclass
class Receipt:
    """validate's synthetic alert: which destinations took it, when."""

    test_id: str
    via: str
    received_at: str
    destinations: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.test_id,
            "via": self.via,
            "received_at": self.received_at,
            "destinations": self.destinations,
        }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Destination:
    def __init__(self, index: int, url: str, timeout: float, per_minute: int, log: logging.Logger) -> None:
        import apprise  # only here: the unit tests of the pure parts need no Apprise

        self.name = f"{scheme_of(url)}#{index}"
        self.url = url
        self.log = log
        self.per_minute = per_minute
        args = f"cto={timeout:g}&rto={timeout:g}"
        self.plugin = apprise.Apprise.instantiate(_with_args(url, args))
        quiet = quiet_url(url)
        self.quiet_plugin = apprise.Apprise.instantiate(_with_args(quiet, args)) if quiet else None
        self.valid = self.plugin is not None
        self.queue: queue.Queue[tuple[Message, bool]] = queue.Queue(QUEUE_SIZE)
        self.limiter = RateLimiter(per_minute)
        self.held = Held()
        self.sent = self.failed = self.dropped = self.held_count = 0
        self.last_error: str | None = None
        self.last_ok_at: str | None = None
        self.last_failure_at: str | None = None
        self.busy_since: float | None = None  # monotonic start of the send in progress
        self.receipts: dict[str, Receipt] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name=f"notify-{self.name}", daemon=True)
        self._stop = threading.Event()
        for metric in (SENT, FAILED, DROPPED, HELD):
            metric.labels(self.name)  # exported as 0 from the start: an alert rule sees the series

    def start(self) -> None:
        if self.valid:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def offer(self, message: Message, quiet: bool) -> bool:
        """Queue without waiting; a full queue holds the message for the summary (counted as dropped)."""
        try:
            self.queue.put_nowait((message, quiet))
        except queue.Full:
            with self._lock:
                self.dropped += 1
                self.held.add(message)
            DROPPED.labels(self.name).inc()
            return False
        QUEUED.labels(self.name).set(self.queue.qsize())
        return True

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                message, quiet = self.queue.get(timeout=0.5)
            except queue.Empty:
                message = None
            QUEUED.labels(self.name).set(self.queue.qsize())
            now = time.monotonic()
            with self._lock:
                backlog = self.held.take(self.per_minute) if self.held and self.limiter.wait(now) == 0 else None
            if backlog is not None and self.limiter.admit(now):
                self._send(backlog, quiet=True)
            if message is None:
                continue
            # validate's test alert goes at once: the trader asked for it, and its receipt is awaited
            if message.test_id is None and not self.limiter.admit(time.monotonic()):
                with self._lock:
                    self.held.add(message)
                    self.held_count += 1
                HELD.labels(self.name).inc()
                continue
            self._send(message, quiet)

    def _send(self, message: Message, quiet: bool) -> None:
        plugin = self.quiet_plugin if quiet and self.quiet_plugin is not None else self.plugin
        CAPTURE.local.last = None
        self.busy_since = time.monotonic()
        error: str | None = None
        try:
            ok = bool(plugin.notify(body=message.body, title=message.title, notify_type=message.level))
        except Exception as exc:  # noqa: BLE001 - a plugin's bug is this destination's failure, nothing more
            ok, error = False, f"{type(exc).__name__}: {exc}"
        took = time.monotonic() - self.busy_since
        self.busy_since = None
        at = _now()
        if ok:
            SENT.labels(self.name).inc()
            with self._lock:
                self.sent += 1
                self.last_ok_at = at
        else:
            why = clean(error or CAPTURE.local.last or "the destination refused the message", self.url)
            FAILED.labels(self.name).inc()
            with self._lock:
                self.failed += 1
                self.last_error, self.last_failure_at = why, at
            self.log.warning(
                "notification failed",
                extra={"destination": self.name, "kind": message.kind, "error": why, "seconds": round(took, 2)},
            )
        if message.test_id is not None:
            receipt = self.receipts.get(message.test_id)
            if receipt is not None:
                receipt.destinations[self.name] = {"ok": ok, "at": at, "error": None if ok else self.last_error}

    def facts(self) -> dict[str, Any]:
        busy = time.monotonic() - self.busy_since if self.busy_since is not None else None
        with self._lock:
            return {
                "valid": self.valid,
                "sent": self.sent,
                "failed": self.failed,
                "dropped": self.dropped,
                "held": self.held_count,
                "queued": self.queue.qsize(),
                "last_ok_at": self.last_ok_at,
                "last_failure_at": self.last_failure_at,
                "last_error": self.last_error,
                "sending_for_seconds": round(busy, 1) if busy is not None else None,
            }


def _with_args(url: str, args: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{args}"


class Dispatcher:
    """Every destination; `submit` never blocks (called from the event loop)."""

    def __init__(self, urls: list[str], timeout: float, per_minute: int, log: logging.Logger) -> None:
        self.log = log
        self.timeout = timeout
        self.destinations = [Destination(i, u, timeout, per_minute, log) for i, u in enumerate(urls, start=1)]
        for d in self.destinations:
            if not d.valid:
                log.warning("NOTIFY_URLS: not a URL Apprise knows; skipped", extra={"destination": d.name})
        self.receipts: dict[str, Receipt] = {}

    def start(self) -> None:
        for d in self.destinations:
            d.start()

    def stop(self) -> None:
        for d in self.destinations:
            d.stop()

    @property
    def usable(self) -> list[Destination]:
        return [d for d in self.destinations if d.valid]

    def submit(self, message: Message, mode: str) -> int:
        """Hand `message` to every destination its mode allows; the number it was queued for."""
        queued = 0
        for d in self.usable:
            how = delivery_for(mode, d.url)
            if message.test_id is not None:
                how = delivery_for("on", d.url)
            if not how.send:
                if mode != "off":
                    RECORDED.labels(message.kind).inc()
                continue
            queued += d.offer(message, how.quiet)
        return queued

    def open_receipt(self, test_id: str, via: str) -> Receipt:
        receipt = Receipt(test_id, via, _now())
        self.receipts[test_id] = receipt
        while len(self.receipts) > 50:  # a few recent ones are all validate ever asks for
            old = next(iter(self.receipts))
            self.receipts.pop(old)
            for d in self.destinations:
                d.receipts.pop(old, None)
        for d in self.destinations:
            d.receipts[test_id] = receipt
        return receipt

    def hung(self) -> list[str]:
        """Destinations whose current send outlasted its timeouts (connect plus read) by far."""
        limit = self.timeout * 3
        return [d.name for d in self.usable if d.busy_since is not None and time.monotonic() - d.busy_since > limit]
