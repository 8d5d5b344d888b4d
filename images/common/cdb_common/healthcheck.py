"""Health probe for any URL: `python3 -m cdb_common.healthcheck [URL]` exits 0 on HTTP 200.

Defaults to http://127.0.0.1:$HTTP_PORT/health. The images' own HEALTHCHECK is `healthcheck.sh` (bash:
5 ms of CPU where this Python start takes 80-100 ms); this stays for a playbook written against the
earlier images and for probing another URL from inside a container.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else f"http://127.0.0.1:{os.environ.get('HTTP_PORT', '8000')}/health"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            body = response.read(4096).decode("utf-8", "replace")
            print(body)
            return 0 if response.status == 200 else 1
    except urllib.error.HTTPError as exc:
        print(exc.read(4096).decode("utf-8", "replace"))
        return 1
    except (OSError, ValueError) as exc:
        print(f"health probe failed: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
