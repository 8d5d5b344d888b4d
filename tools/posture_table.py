"""Print the posture of a stack's containers as a Markdown table, read from `docker inspect` the way
docker-bench-security reads it (CIS Docker Benchmark §5). Usage: python3 tools/posture_table.py SYSTEM
(SYSTEM is the playbook's `system:`, e.g. claire_de_binare). `cdb-ops doctor` checks the same items."""

from __future__ import annotations

import sys

import docker


def row(c: dict) -> str:
    h = c["HostConfig"]
    ports = sorted({b.get("HostIp") or "0.0.0.0" for v in (h.get("PortBindings") or {}).values() for b in v or []})
    log = h.get("LogConfig") or {}
    opts = ",".join(f"{k}={v}" for k, v in sorted((log.get("Config") or {}).items()))
    nnp = any("no-new-privileges" in o for o in h.get("SecurityOpt") or [])
    mem = h.get("Memory") or 0
    cells = [
        c["Name"].lstrip("/"),
        c["Config"].get("User") or "(root)",
        ",".join(h.get("CapDrop") or []) or "-",
        ",".join(h.get("CapAdd") or []) or "-",
        "yes" if nnp else "no",
        "yes" if h.get("ReadonlyRootfs") else "no",
        ",".join(sorted(h.get("Tmpfs") or {})) or "-",
        str(h.get("PidsLimit") or "-"),
        f"{mem >> 20} MiB" if mem else "-",
        ",".join(ports) or "-",
        f"{log.get('Type', '')} {opts}".strip(),
    ]
    return "| " + " | ".join(cells) + " |"


def main(system: str) -> None:
    api = docker.from_env().api
    print("| container | user | CapDrop | CapAdd | no-new-priv | ro rootfs | tmpfs | pids | memory | ports | log |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    found = api.containers(filters={"label": f"cdb.system={system}"})
    for s in sorted(found, key=lambda s: s["Names"][0]):
        print(row(api.inspect_container(s["Id"])))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "claire_de_binare")
