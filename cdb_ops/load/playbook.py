"""The playbook model: `playbooks/stack.yaml` (what the stack is) and phase playbooks (in what order
to converge it). Loading validates everything — keys, types, references, cycles, ports — before any
command touches the engine, and every error names the file, the line and the fix."""

from __future__ import annotations

import ipaddress
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cdb_ops.errors import ConfigError, ConfigErrors
from cdb_ops.load import hardening
from cdb_ops.load.specs import RunbookSpec, SpecModel, StackSpec
from cdb_ops.load.validation import config_errors_from
from cdb_ops.load.yamlsource import YamlDocument, load_yaml

# ---------------------------------------------------------------------------------------------
# loading with cross-reference checks


def _validate(doc: YamlDocument, model: type[SpecModel]) -> Any:
    if not isinstance(doc.data, dict):
        raise ConfigError(
            "the playbook must be a YAML mapping (key: value lines)",
            "start from the shipped playbooks/stack.yaml",
            file=str(doc.path),
            line=1,
        )
    # top-level `x-...` keys hold YAML anchors shared by several services (as in Compose)
    data = {k: v for k, v in doc.data.items() if not str(k).startswith("x-")}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise config_errors_from(exc, doc, model) from None


def _stack_problems(stack: StackSpec, doc: YamlDocument) -> list[ConfigError]:
    problems: list[ConfigError] = []
    f = str(doc.path)
    names = set(stack.services)

    def err(loc: tuple[str | int, ...], msg: str, fix: str) -> None:
        problems.append(ConfigError(msg, fix, file=f, line=doc.line_of(loc)))

    containers: dict[str, str] = {}
    host_ports: list[tuple[str, int, str, str]] = []  # (bind, port, protocol, service)
    for name, svc in stack.services.items():
        base = ("services", name)
        if svc.container in containers:
            err(
                base + ("container",),
                f"container name {svc.container!r} is also used by service {containers[svc.container]!r}",
                "give every service its own container name",
            )
        containers[svc.container] = name
        if svc.build and svc.fallback_build:
            err(
                base + ("fallback_build",),
                f"service {name!r} has both build and fallback_build",
                "use build: for images built here, fallback_build: for pulled images with a local fallback",
            )
        for dep in svc.depends_on:
            if dep not in names:
                close = [n for n in names if n.startswith(dep[:3])]
                err(
                    base + ("depends_on", dep),
                    f"service {name!r} depends on unknown service {dep!r}",
                    f"use one of: {', '.join(sorted(names))}" + (f" (did you mean {close[0]!r}?)" if close else ""),
                )
            elif dep == name:
                err(base + ("depends_on", dep), f"service {name!r} depends on itself", "remove that entry")
        for i, port in enumerate(svc.ports):
            bind = port.bind or stack.bind
            other = next((o for o in host_ports if o[1:3] == (port.host, port.protocol) and _overlap(o[0], bind)), None)
            if other is not None:
                also = "" if other[0] == bind else f" (on {other[0]} and {bind}: 0.0.0.0 / :: include every address)"
                err(
                    base + ("ports", i),
                    f"host port {port.host} is published by both {other[3]!r} and {name!r}{also}",
                    "give one of them another host port (the number before the ':')",
                )
            host_ports.append((bind, port.host, port.protocol, name))
        for i, mount in enumerate(svc.volumes):
            if not mount.is_bind and mount.source not in stack.volumes:
                err(
                    base + ("volumes", i),
                    f"service {name!r} mounts undeclared volume {mount.source!r}",
                    f"declare it under top-level volumes:, or use one of: {', '.join(sorted(stack.volumes))}",
                )
        for env_key in svc.env:
            if env_key in svc.secrets or env_key.removesuffix("_FILE") in svc.secrets:
                err(
                    base + ("env", env_key),
                    f"{env_key} is listed both in env and secrets of {name!r}",
                    "keep it only under secrets: (it reaches the container as a read-only file)",
                )
        if svc.ready and svc.ready.probe in ("postgres", "redis", "http") and not svc.ports:
            err(
                base + ("ready",),
                f"service {name!r} is probed over {svc.ready.probe} but publishes no port",
                "add a ports: entry or use `probe: docker`",
            )
        if svc.ready and svc.ready.port and svc.ready.port not in {p.container for p in svc.ports}:
            err(
                base + ("ready", "port"),
                f"ready.port {svc.ready.port} is not one of {name!r}'s container ports",
                "use a container port listed under ports:",
            )
    hardening.problems(stack, err)
    for feed, spec in stack.feeds.items():
        for svc_name, deps in spec.depends_on.items():
            for dep in [svc_name, *deps]:
                if dep not in names:
                    err(
                        ("feeds", feed, "depends_on"),
                        f"feed {feed!r} names unknown service {dep!r}",
                        f"use one of: {', '.join(sorted(names))}",
                    )
            if svc_name in deps:  # the shortest cycle: the merged graphs below leave self-edges out
                err(
                    ("feeds", feed, "depends_on", svc_name),
                    f"feed {feed!r} makes service {svc_name!r} depend on itself",
                    f"remove {svc_name!r} from feeds.{feed}.depends_on.{svc_name}",
                )
        for svc_name in spec.env:
            if svc_name not in names:
                err(
                    ("feeds", feed, "env", svc_name),
                    f"feed {feed!r} sets env of unknown service {svc_name!r}",
                    f"use one of: {', '.join(sorted(names))}",
                )
        for prof in spec.profiles:
            if prof not in stack.profiles:
                err(
                    ("feeds", feed, "profiles"),
                    f"feed {feed!r} names unknown profile {prof!r}",
                    f"use one of: {', '.join(sorted(stack.profiles))}",
                )
    if stack.default_feed is not None and stack.default_feed not in stack.feeds:
        err(
            ("default_feed",),
            f"default_feed {stack.default_feed!r} is not declared under feeds:",
            f"use one of: {', '.join(sorted(stack.feeds)) or '(declare feeds first)'}",
        )
    for prof in stack.default_profiles:
        if prof not in stack.profiles:
            err(
                ("default_profiles",),
                f"default_profiles names unknown profile {prof!r}",
                f"use profiles the services declare: {', '.join(sorted(stack.profiles))}",
            )
    if not any(p for p in problems if "unknown service" in p.message):
        graph = {n: set(s.depends_on) - {n} for n, s in stack.services.items()}
        cycle = _cycle(graph)
        if cycle:
            err(
                ("services", cycle[0], "depends_on"),
                "dependency cycle: " + " -> ".join(cycle),
                "remove one depends_on entry so the services can start in order",
            )
        else:  # a feed adds dependencies: the stack as resolved with it must start in order too
            for feed, spec in stack.feeds.items():
                merged = {n: deps | (set(spec.depends_on.get(n, {})) - {n}) for n, deps in graph.items()}
                cycle = _cycle(merged)
                if cycle:
                    err(
                        ("feeds", feed, "depends_on"),
                        f"dependency cycle with feed {feed!r}: " + " -> ".join(cycle),
                        f"remove one entry of feeds.{feed}.depends_on (or of the services' depends_on)",
                    )
    return problems


def _overlap(a: str, b: str) -> bool:
    """Two bind addresses take the same host port: equal, or either is every address (0.0.0.0, ::)."""
    return a == b or ipaddress.ip_address(a).is_unspecified or ipaddress.ip_address(b).is_unspecified


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        return list(exc.args[1])
    return None


def load_stack(path: Path) -> StackSpec:
    doc = load_yaml(path)
    stack: StackSpec = _validate(doc, StackSpec)
    problems = _stack_problems(stack, doc)
    if problems:
        raise ConfigErrors(problems) if len(problems) > 1 else problems[0]
    return stack


def load_runbook(path: Path) -> tuple[RunbookSpec, StackSpec]:
    """A phase playbook and the stack it refers to, cross-checked."""
    doc = load_yaml(path)
    book: RunbookSpec = _validate(doc, RunbookSpec)
    stack = load_stack(path.parent / book.stack)
    problems: list[ConfigError] = []
    seen: set[str] = set()
    for i, phase in enumerate(book.phases):
        if phase.name in seen:
            problems.append(
                ConfigError(
                    f"phase name {phase.name!r} is used twice",
                    "give each phase its own name",
                    file=str(path),
                    line=doc.line_of(("phases", i, "name")),
                )
            )
        seen.add(phase.name)
        for j, svc in enumerate(phase.services or []):
            if svc not in stack.services:
                problems.append(
                    ConfigError(
                        f"phase {phase.name!r} names unknown service {svc!r}",
                        f"use one of: {', '.join(sorted(stack.services))}",
                        file=str(path),
                        line=doc.line_of(("phases", i, "services", j)),
                    )
                )
        if phase.services is not None and phase.kind not in ("services", "images"):
            problems.append(
                ConfigError(
                    f"phase {phase.name!r} of kind {phase.kind} takes no services list",
                    "remove `services:` from it",
                    file=str(path),
                    line=doc.line_of(("phases", i, "services")),
                )
            )
    if problems:
        raise ConfigErrors(problems) if len(problems) > 1 else problems[0]
    return book, stack


def start_order(stack: StackSpec, selected: list[str]) -> list[list[str]]:
    """Tiers of services: every service starts after the tiers holding its dependencies."""
    sel = set(selected)
    graph = {n: {d for d in stack.services[n].depends_on if d in sel} for n in selected}
    sorter = TopologicalSorter(graph)
    sorter.prepare()
    tiers: list[list[str]] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        tiers.append(ready)
        sorter.done(*ready)
    return tiers
