"""What the engine reports about one container (facts, read-only): the part of the observation that
`status` needs too. The rest of the stack's facts and the one snapshot the planner decides from are in
model/observed.py (kept apart so the quick status path defines only these classes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cdb_ops.model.ports import PortBinding


@dataclass(frozen=True)
class ContainerPosture:
    """A container's security posture as `docker inspect` reports it (what CIS Docker Benchmark §5
    checks): read from HostConfig and Config, compared with the playbook by `doctor`."""

    user: str  # Config.User: "" is the image's default, root unless the image says otherwise
    cap_drop: tuple[str, ...]
    cap_add: tuple[str, ...]
    security_opt: tuple[str, ...]
    read_only: bool
    tmpfs: tuple[str, ...]  # mount points
    pids_limit: int  # 0: none
    memory: int  # bytes; 0: none
    log_driver: str
    log_options: dict[str, str]


@dataclass(frozen=True)
class ContainerFacts:
    id: str
    name: str
    image_id: str
    image_ref: str
    labels: dict[str, str]
    state: str  # created | running | restarting | exited | paused | dead
    health: str | None  # starting | healthy | unhealthy | None (no health check)
    started_at: datetime | None
    restart_count: int
    exit_code: int
    networks: tuple[str, ...]
    ports: tuple[PortBinding, ...]
    volumes: tuple[str, ...]
    health_output: str = ""  # the last health check's output
    network_ids: tuple[str, ...] = ()
    # State.OOMKilled: the kernel's OOM killer ended the last run. Docker sets it at each exit and keeps it
    # while a restarted container runs again (ExitCode it resets to 0 at the start), so it names the cause
    # of the last restart too.
    oom_killed: bool = False
    memory_limit: int = 0  # HostConfig.Memory in bytes; 0: no limit
    finished_at: datetime | None = None  # the end of the last run (None: it never ended)
    posture: ContainerPosture | None = None  # from inspect only (the list endpoint has none of it)

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def last_exit(self) -> LastExit | None:
        """How the last run ended, when one did (an exit, or a restart since the container was created)."""
        if self.running and not self.restart_count and not self.oom_killed:
            return None
        if not self.running and self.state not in ("exited", "dead", "restarting") and not self.oom_killed:
            return None  # created, paused, removing: nothing ended
        # a running container's ExitCode is 0 again; an OOM kill is the kernel's SIGKILL: 128 + 9
        code: int | None = self.exit_code if not self.running else (137 if self.oom_killed else None)
        return LastExit(self.oom_killed, code, self.memory_limit, self.restart_count, self.finished_at)


SIGKILL_EXIT = 137  # 128 + SIGKILL: what the OOM killer (and `docker kill`) leaves as the exit code


@dataclass(frozen=True)
class LastExit:
    """Why a container's last run ended, in the engine's words; `describe()` says it the one way that a
    failed wait, `status`, `validate` and `doctor` all print."""

    oom_killed: bool
    exit_code: int | None  # None: the container runs again and Docker no longer keeps the old code
    memory_limit: int  # bytes; 0: none
    restarts: int
    finished_at: datetime | None

    @property
    def killed(self) -> bool:
        """Killed by SIGKILL: exit 137 — the OOM killer, even where the engine did not flag it as such."""
        return self.oom_killed or self.exit_code == SIGKILL_EXIT

    def describe(self) -> str:
        """'OOMKilled (exit code 137, memory limit 128 MiB), restarted 3×' and the like."""
        parts = []
        if self.exit_code is not None:
            parts.append(f"exit code {self.exit_code}")
        parts.append(f"memory limit {human_mib(self.memory_limit)}" if self.memory_limit else "no memory limit")
        if self.oom_killed:
            head = f"OOMKilled ({', '.join(parts)})"
        elif self.exit_code == SIGKILL_EXIT:
            head = f"killed by SIGKILL — the OOM killer or `docker kill` ({', '.join(parts)})"
        elif self.exit_code is not None:
            head = f"exited with code {self.exit_code}"
        else:
            head = "not OOM-killed (Docker keeps no exit code once a container runs again)"
        return head + (f", restarted {self.restarts}×" if self.restarts else "")

    def to_dict(self) -> dict[str, object]:
        return {
            "oom_killed": self.oom_killed,
            "exit_code": self.exit_code,
            "memory_limit_bytes": self.memory_limit or None,
            "restarts": self.restarts,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


def oom_remedy(service: str, flagged: bool) -> str:
    """The fix for a service the OOM killer ends — the same words in a failed wait, validate and doctor."""
    why = "the kernel killed it at its memory limit" if flagged else "exit 137 is a SIGKILL, as the OOM killer sends"
    return (
        f"{why}: raise `mem_limit` of service {service} in the playbook (playbooks/stack.yaml) and rebuild, "
        f"or find what grows (`cdb-ops status` shows its memory; `cdb-ops logs {service}`)"
    )


def human_mib(n: int) -> str:
    return f"{n / 1024 / 1024:.0f} MiB" if n >= 1024 * 1024 else f"{n} bytes"


@dataclass(frozen=True)
class ContainerStats:
    memory_bytes: int
    cpu_percent: float | None


@dataclass(frozen=True)
class ContainerExit:
    """A container's main process ended (the engine's `die` event: before Docker tears down its network
    and mounts, which a `docker stop` waits for too)."""

    name: str
    exit_code: int
