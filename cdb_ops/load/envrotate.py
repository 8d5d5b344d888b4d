"""`init --rotate`: fresh values for the secrets of an existing .env, every other line kept as written."""

from __future__ import annotations

import re

from cdb_common.envrules import SECRET_KEYS

from cdb_ops.load.settings import generate_secret

# secrets `rebuild` cannot apply to data that already exists, so rotating them in .env alone would make
# .env lie: kept, with the way to change them
NOT_ROTATED = {
    "GRAFANA_PASSWORD": "Grafana keeps its admin password in its own database (volume cdb_grafana_data) and "
    "reads the file only on its first start: change it in Grafana (Profile > Change password), then in .env",
}

_LINE_RE = re.compile(r"^(\s*(?:export\s+)?)([A-Za-z_][A-Za-z0-9_]*)(\s*=\s*)(.*)$")


def rotate_secrets(text: str) -> tuple[str, list[str]]:
    """(the new text, the keys given new values). Only `KEY=value` lines of rotatable secret keys change;
    comments (also one after an unquoted value), order, blank lines and every other value stay byte for
    byte. A secret with no line is left to `init`/validation (it is required anyway)."""
    out: list[str] = []
    rotated: list[str] = []
    for raw in text.splitlines(keepends=True):
        body = raw.rstrip("\r\n")
        m = _LINE_RE.match(body)
        if m and m.group(2) in SECRET_KEYS and m.group(2) not in NOT_ROTATED:
            value = m.group(4)
            quoted = len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'"
            comment = "" if quoted or " #" not in value else " #" + value.split(" #", 1)[1]
            out.append(f"{m.group(1)}{m.group(2)}{m.group(3)}{generate_secret()}{comment}{raw[len(body) :]}")
            rotated.append(m.group(2))
        else:
            out.append(raw)
    return "".join(out), rotated
