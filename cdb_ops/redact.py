"""The redactor: every secret value of `.env` becomes '***' in whatever cdb-ops prints or records.

Built once per invocation (by the CLI session, from the loaded settings) and handed to everything that
writes text a person or a file will see."""

from __future__ import annotations

from collections.abc import Iterable


class Redactor:
    """Replaces every secret value in text with '***' (for logs, errors and --json)."""

    def __init__(self, secrets: Iterable[str] = ()):
        # longest first: a secret that contains another is replaced whole
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        return text
