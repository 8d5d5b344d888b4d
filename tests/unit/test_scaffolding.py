"""The tests' one registry of stacks: no two test modules (or bench scripts) share a system label, a
container prefix or a published host port, so they can run beside each other and beside a user's stack."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

from tests.helpers import STACKS, wait_until

# the container ports the playbook publishes (Postgres, Redis, the services, replay, Prometheus,
# the backup service, the notifier, Grafana and Alertmanager) — a test stack publishes each at +offset
CONTAINER_PORTS = (3000, 5432, 6379, 8000, 8001, 8002, 8003, 8010, 8020, 8030, 9090, 9093)
EPHEMERAL_LOW = 32768  # net.ipv4.ip_local_port_range's default start


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
        ports = {stack.port(p) for p in CONTAINER_PORTS}
        assert not ports & set(CONTAINER_PORTS), f"{name} publishes one of the user's own ports"
        # below Linux' ephemeral range: an outgoing connection may hold any port in it when Docker binds
        assert min(ports) >= 1024 and max(ports) < EPHEMERAL_LOW, f"{name} publishes {sorted(ports)}"


def test_wait_until_returns_the_first_truthy_value_and_names_what_it_waited_for() -> None:
    calls = iter([None, 0, "ready"])
    assert wait_until("the thing", lambda: next(calls), timeout=5, every=0.01) == "ready"
    with pytest.raises(AssertionError, match=r"the other thing: not within 0 s \(last: ValueError"):
        wait_until("the other thing", lambda: int("x"), timeout=0.05, every=0.01)


# Modules other helpers are editing while this guard lands; the integrator clears this list once they
# are converted too.
ALLOWED = {"test_exchange_rules.py", "test_trading_controls.py", "test_backups_scheduled.py"}
TESTS = Path(__file__).resolve().parents[1]
# every module of the Docker tests and what they share (helpers.py is the one place the scaffolding lives)
TEST_MODULES = sorted(
    p
    for p in [*TESTS.glob("*.py"), *(TESTS / "integration").glob("*.py"), *(TESTS / "e2e").glob("*.py")]
    if p.name not in {*ALLOWED, "helpers.py", "__init__.py"} and not p.name.startswith("test_trading_controls")
)


def _own_scaffolding(tree: ast.Module) -> list[str]:
    """What a test module does by hand that tests/helpers.py does once (see the module's docstring)."""
    found = []
    for node in tree.body:  # module-level SYSTEM = "...", PREFIX = ..., OFFSET = 29000 (or a tuple of them)
        if isinstance(node, ast.Assign):
            names = [n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)]
            literal = any(isinstance(v, ast.Constant) for v in ast.walk(node.value))
            for name in names:
                if name in {"SYSTEM", "PREFIX", "OFFSET"} and literal:
                    found.append(f"line {node.lineno}: {name} is a literal (take it from STACKS)")
    for node in ast.walk(tree):
        if isinstance(node, ast.While) and any(  # `while clock < deadline` or `while True: ... if clock > deadline`
            isinstance(c, ast.Compare)
            and any(isinstance(n, ast.Attribute) and n.attr in {"monotonic", "time"} for n in ast.walk(c))
            for c in ast.walk(node)
        ):
            found.append(f"line {node.lineno}: a while loop on the clock (use wait_until)")
        if isinstance(node, ast.Call):
            text = ast.unparse(node.func)
            if text == "psycopg.connect":
                found.append(f"line {node.lineno}: psycopg.connect (use tests.helpers.pg_connect)")
            if text == "subprocess.run" and node.args:  # Popen (to signal a running command) stays
                argv = ast.unparse(node.args[0])
                if "sys.executable" in argv and "cdb_ops" in argv:
                    found.append(f"line {node.lineno}: runs cdb_ops itself (use tests.helpers.cdb/cdb_json)")
    return found


@pytest.mark.parametrize("module", TEST_MODULES, ids=lambda p: p.name)
def test_a_test_module_uses_the_one_scaffolding(module: Path) -> None:
    found = _own_scaffolding(ast.parse(module.read_text(), str(module)))
    assert not found, f"{module.name} writes its own scaffolding:\n" + "\n".join(found)


def test_the_scaffolding_guard_catches_each_kind() -> None:
    source = (
        'SYSTEM, PREFIX, OFFSET = "cdb_x", "cdbx_", 1\n'
        "def f():\n"
        "    while time.monotonic() < deadline:\n"
        "        pass\n"
        '    subprocess.run([sys.executable, "-m", "cdb_ops", "status"])\n'
        "    psycopg.connect(host='127.0.0.1')\n"
    )
    found = "\n".join(_own_scaffolding(ast.parse(source)))
    for kind in ("SYSTEM", "PREFIX", "OFFSET", "clock", "runs cdb_ops", "psycopg.connect"):
        assert kind in found, kind
    assert not _own_scaffolding(ast.parse('STACK = STACKS["x"]\nSYSTEM = STACK.system\n'))
