"""The notifier's settings grammar (NOTIFY_EVENTS, NOTIFY_URLS) and the "silent" form of a destination: one
place for the notifier and for cdb-ops's .env rules (envrules.py). Pure, standard library only.

Modes: `on` (delivered), `silent` (delivered without sound where the destination has a quiet mode, else
recorded only — counted, logged and in the daily summary), `off` (not even recorded)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

EVENT_TYPES = ("alert", "fill", "exit", "breaker", "state", "summary")
MODES = ("on", "silent", "off")
# what an unset NOTIFY_EVENTS means: every event, entries quietly (they come in bursts; exits carry the PnL)
DEFAULT_MODES = {"alert": "on", "fill": "silent", "exit": "on", "breaker": "on", "state": "on", "summary": "on"}
DEFAULT_TEXT = ",".join(f"{k}:{v}" for k, v in DEFAULT_MODES.items())

# destinations with a quiet mode, and the URL argument that turns it on (Apprise's own parameters); a
# webhook (json/xml/form) makes no sound anyway, so it gets the message as it is
QUIET_ARGUMENT = {
    "tgram": "silent=yes",
    "ntfy": "priority=min",
    "ntfys": "priority=min",
    "pover": "priority=-2",
    "gotify": "priority=0",
    "gotifys": "priority=0",
}
NO_SOUND_ANYWAY = frozenset({"json", "jsons", "xml", "xmls", "form", "forms"})


class ModeError(ValueError):
    """NOTIFY_EVENTS names an unknown event type or mode; the message says what is allowed."""


def parse_modes(text: str) -> dict[str, str]:
    """`fill:silent,exit:on` -> every event type's mode (unnamed types keep their default).

    `all:off` (or `all:<mode>`) sets every type first; later items override it."""
    modes = dict(DEFAULT_MODES)
    for n, raw in enumerate((p.strip() for p in text.split(",")), start=1):
        if not raw:
            continue
        kind, sep, mode = (x.strip().lower() for x in raw.partition(":"))
        if not sep:
            raise ModeError(f"item {n} ({raw!r}) is not type:mode, e.g. fill:silent")
        if mode not in MODES:
            raise ModeError(f"item {n}: mode {mode!r} is not one of {', '.join(MODES)}")
        if kind == "all":
            modes = dict.fromkeys(EVENT_TYPES, mode)
        elif kind in EVENT_TYPES:
            modes[kind] = mode
        else:
            raise ModeError(f"item {n}: event type {kind!r} is not one of all, {', '.join(EVENT_TYPES)}")
    return modes


def modes_problem(text: str) -> str | None:
    """For the .env rules table: what is wrong with a NOTIFY_EVENTS value, or None."""
    try:
        parse_modes(text)
    except ModeError as exc:
        return str(exc)
    return None


def scheme_of(url: str) -> str:
    return url.partition("://")[0].strip().lower()


def quiet_url(url: str) -> str | None:
    """The URL that delivers without sound, the URL itself when it makes none, or None: record only."""
    scheme = scheme_of(url)
    if scheme in NO_SOUND_ANYWAY:
        return url
    arg = QUIET_ARGUMENT.get(scheme)
    if arg is None:
        return None
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, arg) if q)
    return parts._replace(query=query).geturl()


@dataclass(frozen=True)
class Delivery:
    """How one message goes to one destination: as it is, quietly, or not at all (recorded only)."""

    send: bool
    quiet: bool


def delivery_for(mode: str, url: str) -> Delivery:
    if mode == "on":
        return Delivery(True, False)
    if mode == "silent":
        return Delivery(quiet_url(url) is not None, True)
    return Delivery(False, False)


def split_urls(text: str) -> list[str]:
    """NOTIFY_URLS: comma- (or newline-) separated Apprise URLs; blanks ignored."""
    return [u.strip() for u in text.replace("\n", ",").split(",") if u.strip()]


def urls_problem(text: str) -> str | None:
    """What is wrong with a NOTIFY_URLS value — naming the item by position, never echoing it (a secret)."""
    for n, url in enumerate(split_urls(text), start=1):
        scheme, sep, rest = url.partition("://")
        if not sep or not scheme or not rest or not scheme.replace("+", "").replace("-", "").isalnum():
            return f"item {n} is not an Apprise URL (scheme://..., e.g. tgram://TOKEN/CHAT or json://host:port/path)"
        if any(c in url for c in " \t\"'`"):
            return f"item {n} contains spaces or quotes"
    return None


def url_parts(url: str) -> list[str]:
    """The pieces of a URL that may be secret (tokens, user, password, host, path segments), longest
    first so a cleaned message leaves no partial token behind."""
    rest = url.partition("://")[2]
    pieces = {p for p in re.split(r"[/:@?&=#,]+", rest) if len(p) >= 3}
    return sorted(pieces | {url, rest}, key=len, reverse=True)


def clean(text: str, url: str) -> str:
    for piece in url_parts(url):
        text = text.replace(piece, "***")
    return text[:300]
