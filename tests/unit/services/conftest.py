"""Put the service sources on sys.path: they are shipped as images, not installed as packages."""

from __future__ import annotations

import sys
from pathlib import Path

IMAGES = Path(__file__).resolve().parents[3] / "images"
for folder in ("common", "screener", "signal_engine", "risk_manager", "execution", "market_replay", "notifier"):
    path = str(IMAGES / folder)
    if path not in sys.path:
        sys.path.insert(0, path)
