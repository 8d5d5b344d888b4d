"""How each action is coloured, in the progress, the run table and the plan (rich style names): one table
for rich and for the printer that prints the same without it (report/plain.py)."""

from __future__ import annotations

ACTION_STYLE = {
    "create": "green",
    "recreate": "yellow",
    "rotate": "yellow",
    "start": "green",
    "remove": "red",
    "build": "cyan",
    "pull": "cyan",
    "ok": "dim",
    "orphan": "magenta",
    "conflict": "bold red",
    "wait": "blue",
    "migrate": "cyan",
    "pass": "green",
    "warn": "yellow",
    "fail": "bold red",
    "skip": "dim",
    "drain": "yellow",
    "restore": "green",
    "keep": "dim",
    "rollback": "bold yellow",
}
