"""One small read through libpq itself (ctypes), for `status`: importing psycopg costs a quarter of a
second — more than the rest of the quick `status` together — while the C library it wraps answers a
single query in milliseconds. Only what `status` needs: connect, one statement, the first value as text.
Every other command uses psycopg.

libpq is the system's (`libpq.so.5`, Debian's libpq5) or else the copy psycopg's binary wheel bundles;
neither found is LibpqUnavailable, and the caller reads through psycopg instead."""

from __future__ import annotations

import ctypes
import glob
import os
from typing import Any

CONNECTION_OK = 0
PGRES_TUPLES_OK = 2


class LibpqUnavailable(Exception):
    """No libpq to load here."""


class QueryFailed(Exception):
    """The connection or the statement failed; the message is libpq's first line."""


_lib: Any = None


def _bundled() -> list[str]:
    """psycopg_binary's own libpq, found without importing psycopg (its import is what this avoids)."""
    from importlib.util import find_spec

    try:
        spec = find_spec("psycopg_binary")
    except (ImportError, ValueError):
        return []
    out: list[str] = []
    for location in (spec.submodule_search_locations or []) if spec else []:
        out += sorted(glob.glob(os.path.join(os.path.dirname(location), "psycopg_binary.libs", "libpq-*.so*")))
    return out


def load() -> Any:
    global _lib
    if _lib is not None:
        return _lib
    for name in ("libpq.so.5", *_bundled()):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        vp, cp, ci = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
        for fn, res, args in (
            ("PQconnectdb", vp, [cp]),
            ("PQstatus", ci, [vp]),
            ("PQerrorMessage", cp, [vp]),
            ("PQexec", vp, [vp, cp]),
            ("PQresultStatus", ci, [vp]),
            ("PQresultErrorMessage", cp, [vp]),
            ("PQntuples", ci, [vp]),
            ("PQgetisnull", ci, [vp, ci, ci]),
            ("PQgetvalue", cp, [vp, ci, ci]),
            ("PQclear", None, [vp]),
            ("PQfinish", None, [vp]),
        ):
            f = getattr(lib, fn)
            f.restype, f.argtypes = res, args
        _lib = lib
        return lib
    raise LibpqUnavailable("no libpq (libpq.so.5) to load")


def conninfo_string(conninfo: dict[str, Any]) -> bytes:
    """key='value' pairs as libpq parses them (quotes and backslashes escaped; None values left out)."""

    def quoted(value: Any) -> str:
        return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"

    return " ".join(f"{k}={quoted(v)}" for k, v in conninfo.items() if v is not None).encode()


def _first_line(raw: bytes | None) -> str:
    text = (raw or b"").decode(errors="replace").strip()
    return text.splitlines()[0] if text else "no message"


def first_value(conninfo: dict[str, Any], sql: str, connect_timeout: int = 2) -> str | None:
    """The first column of the first row as text (None: no row, or SQL NULL), in a read-only session."""
    lib = load()
    conn = lib.PQconnectdb(
        conninfo_string(
            conninfo | {"connect_timeout": connect_timeout, "options": "-c default_transaction_read_only=on"}
        )
    )
    if not conn:
        raise QueryFailed("out of memory")
    try:
        if lib.PQstatus(conn) != CONNECTION_OK:
            raise QueryFailed(_first_line(lib.PQerrorMessage(conn)))
        res = lib.PQexec(conn, sql.encode())
        try:
            if lib.PQresultStatus(res) != PGRES_TUPLES_OK:
                raise QueryFailed(_first_line(lib.PQresultErrorMessage(res) or lib.PQerrorMessage(conn)))
            if lib.PQntuples(res) < 1 or lib.PQgetisnull(res, 0, 0):
                return None
            value: bytes = lib.PQgetvalue(res, 0, 0)
            return value.decode()
        finally:
            lib.PQclear(res)
    finally:
        lib.PQfinish(conn)
