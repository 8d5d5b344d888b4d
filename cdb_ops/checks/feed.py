"""Does the exchange's stream answer? `init` asks once to choose CDB_FEED, and a run on the live feed
asks in its preflight, so a machine without internet is told in seconds instead of after a health wait.

The check is `screener.feedcheck` (standard library only, shipped in the screener image): it runs inside
the screener image on the stack's network — the DNS, routes and CA certificates the screener will
have — when that image exists; before the first build it runs on the host from the project's copy of
the same file, and the result says where it ran."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from cdb_ops.engine.api import Engine
from cdb_ops.errors import CdbError
from cdb_ops.load.project import Project
from cdb_ops.load.specs import StackSpec

SCRIPT = Path("images/screener/screener/feedcheck.py")
DEFAULT_TIMEOUT = 5.0

REMEDIES = {
    "url": "fix FEED_URL of the screener in playbooks/stack.yaml (ws:// or wss://)",
    "dns": "the machine (or Docker's DNS) cannot resolve the exchange: offline, or no DNS",
    "tcp": "no route to the exchange's port: offline, a firewall, or a proxy that containers do not use",
    "tls": "the TLS handshake failed: a proxy intercepting TLS, or missing CA certificates",
    "websocket": "the server answered, but not as a websocket stream: check FEED_URL",
    "frame": "the stream accepted the connection but sent nothing: the exchange may be in maintenance",
}


@dataclass(frozen=True)
class FeedReach:
    url: str
    ok: bool
    stage: str  # the stage reached (ok) or the one that failed: url dns tcp tls websocket frame
    detail: str
    where: str  # "engine network <name>" or "host"
    seconds: float

    @property
    def summary(self) -> str:
        if self.ok:
            return f"the exchange's stream answered from the {self.where} ({self.seconds:.1f} s)"
        return f"the exchange's stream did not answer from the {self.where}: {self.stage}: {self.detail}"

    @property
    def remedy(self) -> str:
        return REMEDIES.get(self.stage, "")

    def to_dict(self) -> dict[str, object]:
        return {
            "url": self.url,
            "ok": self.ok,
            "stage": self.stage,
            "detail": self.detail,
            "where": self.where,
            "seconds": self.seconds,
        }


def live_feed(stack: StackSpec) -> tuple[str, str] | None:
    """(service name, FEED_URL) of the service that reads the exchange on the live feed, if any."""
    live_env = stack.feeds["live"].env if "live" in stack.feeds else {}
    for name, svc in stack.services.items():
        url = live_env.get(name, {}).get("FEED_URL") or svc.env.get("FEED_URL")
        if isinstance(url, str) and url:
            return name, url
    return None


def check_feed(
    stack: StackSpec, project: Project, engine: Engine | None, timeout: float = DEFAULT_TIMEOUT
) -> FeedReach | None:
    """None when the stack has no live feed to check."""
    found = live_feed(stack)
    if found is None:
        return None
    name, url = found
    if engine is not None:
        image = stack.services[name].image
        if engine.image(image) is not None:
            network = stack.network.name if engine.network(stack.network.name) is not None else "bridge"
            code, out, _ = engine.run_once(
                image,
                ["python3", "-m", "screener.feedcheck", url, "--timeout", str(timeout)],
                [],
                network=network,
                timeout=timeout + 10,
            )
            parsed = _last_json(out)
            if parsed is not None:
                return _reach(url, parsed, f"engine network {network}")
            # an image built before the check existed (the next build brings it): ask from the host
            return _reach(url, _host_module(project).check(url, timeout), f"host ({image} has no feed check yet)")
    return _reach(url, _host_module(project).check(url, timeout), "host")


def _reach(url: str, result: dict[str, object], where: str) -> FeedReach:
    return FeedReach(
        url=url,
        ok=bool(result.get("ok")),
        stage=str(result.get("stage", "")),
        detail=str(result.get("detail", "")),
        where=where,
        seconds=float(str(result.get("seconds", 0))),
    )


def _last_json(out: str) -> dict[str, object] | None:
    for line in reversed(out.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict) and "ok" in value:
            return value
    return None


def _host_module(project: Project) -> ModuleType:
    path = project.root / SCRIPT
    spec = importlib.util.spec_from_file_location("cdb_feedcheck", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise CdbError(f"{path} is missing", "restore images/ from git (`git checkout images`)")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
