"""The tests' one registry of stacks: no two test modules (or bench scripts) share a system label, a
container prefix or a published host port, so they can run beside each other and beside a user's stack."""

from __future__ import annotations

import itertools

import pytest

from tests.helpers import STACKS, wait_until

# the container ports the playbook publishes (Postgres, Redis, the services, replay, Prometheus,
# Grafana, Alertmanager and the notifier for later stacks) — a test stack publishes each at +offset
CONTAINER_PORTS = (3000, 5432, 6379, 8000, 8001, 8002, 8003, 8010, 8020, 9090, 9093)


def test_no_two_test_stacks_share_a_name_or_a_port() -> None:
    for a, b in itertools.combinations(STACKS.items(), 2):
        (na, sa), (nb, sb) = a, b
        assert sa.system != sb.system, (na, nb)
        assert not sa.prefix.startswith(sb.prefix) and not sb.prefix.startswith(sa.prefix), (na, nb)
        ports_a = {sa.port(p) for p in CONTAINER_PORTS}
        ports_b = {sb.port(p) for p in CONTAINER_PORTS}
        assert not ports_a & ports_b, f"{na} and {nb} publish {sorted(ports_a & ports_b)}"
    for name, stack in STACKS.items():
        assert stack.system != "claire_de_binare" and stack.prefix != "cdb_", name  # never the user's own
        assert max(stack.port(p) for p in CONTAINER_PORTS) <= 65535, name


def test_wait_until_returns_the_first_truthy_value_and_names_what_it_waited_for() -> None:
    calls = iter([None, 0, "ready"])
    assert wait_until("the thing", lambda: next(calls), timeout=5, every=0.01) == "ready"
    with pytest.raises(AssertionError, match=r"the other thing: not within 0 s \(last: ValueError"):
        wait_until("the other thing", lambda: int("x"), timeout=0.05, every=0.01)
