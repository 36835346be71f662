"""The layers (issue 23): `contract/` is what services agree on (events, subjects, count documents)
and imports no other Groundswell code; `shared/` is the platform code every service runs on, and
imports no service, not even inside a function; no module imports itself back through others at
import time (an import cycle); routes hold no SQL; signing writes through its unit of work."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imports(path: Path, *, module_level_only: bool) -> set[str]:
    """The modules a file imports (absolute names; relative imports are not used here)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def production_modules() -> dict[str, Path]:
    return {module_name(p): p for package in ("contract", "shared", "services") for p in (ROOT / package).rglob("*.py")}


def test_nothing_in_shared_imports_a_service():
    offenders = {
        module_name(path): sorted(name for name in imports(path, module_level_only=False)
                                  if name == "services" or name.startswith("services."))
        for path in (ROOT / "shared").rglob("*.py")
    }
    assert {m: names for m, names in offenders.items() if names} == {}


def test_the_contract_stands_alone():
    """contract/ (events, subjects, count documents, milestones, internal API models) is what every
    service may import: it imports no other Groundswell code, so it can be read, versioned and
    given to another consumer on its own."""
    modules = {module_name(p): p for p in (ROOT / "contract").rglob("*.py")}
    assert {"contract.events", "contract.events", "contract.counts", "contract.internal_api"} <= set(modules)
    offenders = {
        name: sorted(dep for dep in imports(path, module_level_only=False)
                     if dep.split(".")[0] in ("shared", "services"))
        for name, path in modules.items()
    }
    assert {m: deps for m, deps in offenders.items() if deps} == {}


def test_no_import_cycle_at_import_time():
    modules = production_modules()
    graph = {name: {dep for dep in imports(path, module_level_only=True) if dep in modules and dep != name}
             for name, path in modules.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                cycles.append(path[path.index(dep):] + [dep])
            elif dep not in state:
                visit(dep)
        path.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert cycles == []


def route_modules() -> dict[str, Path]:
    """The modules that declare HTTP routes."""
    return {name: path for name, path in production_modules().items() if "APIRouter(" in path.read_text()}


def test_no_sql_in_route_modules():
    """Routes parse, call a use case or a query function, and answer: the SQL is elsewhere."""
    modules = route_modules()
    assert len(modules) >= 10
    offenders = {}
    for name, path in modules.items():
        text = path.read_text()
        found = sorted(dep for dep in imports(path, module_level_only=False) if dep.split(".")[0] == "sqlalchemy")
        found += [call for call in (".execute(", ".begin(", "run_sync(") if call in text]
        if found:
            offenders[name] = found
    assert offenders == {}


def test_signing_writes_through_its_unit_of_work():
    """Outbox rows are written and handed to the relay in one place (shared/unit_of_work.py and the
    group committer it drives): no module of signing writes or publishes one itself."""
    offenders = {}
    for path in (ROOT / "services" / "signing").rglob("*.py"):
        if path.name == "app.py" or "migrations" in path.parts:  # the composition root wires the relay
            continue
        text = path.read_text()
        found = [name for name in ("publish_soon", "outbox_row", "db.outbox", "outbox.insert") if name in text]
        if found:
            offenders[module_name(path)] = found
    assert offenders == {}


def test_dialect_differences_live_in_the_store_adapters():
    """SQLite or PostgreSQL is asked in one place per store: shared/store.py for the platform,
    services/signing/store.py for signing's own statements."""
    adapters = {"shared.store", "services.signing.store", "services.counter.store"}
    asks = re.compile(r"dialect\.name|get_backend_name\(\)\s*[!=]=|[!=]=\s*\"(?:sqlite|postgresql)\"|"
                      r"\"(?:sqlite|postgresql)\"\s*[!=]=|\.sqlite\b\s*(?:$|:|\))")
    offenders = {name: [line.strip() for line in path.read_text().splitlines() if asks.search(line)]
                 for name, path in production_modules().items()
                 if name not in adapters and "migrations.versions" not in name}
    assert {name: lines for name, lines in offenders.items() if lines} == {}


def test_no_isinstance_dispatch_on_events():
    """Each consumer dispatches through its registry (shared/consumers.py Registry): no `if` or
    `elif` on isinstance(..., <an event class>) decides what happens to an event."""
    from contract import events

    event_classes = {name for name, value in vars(events).items()
                     if isinstance(value, type) and issubclass(value, events.Event)}
    offenders = {}
    for name, path in production_modules().items():
        tests = [branch.test for branch in ast.walk(ast.parse(path.read_text())) if isinstance(branch, ast.If)]
        for node in (inner for test in tests for inner in ast.walk(test)):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance"
                    and len(node.args) == 2):
                classes = node.args[1].elts if isinstance(node.args[1], ast.Tuple) else [node.args[1]]
                named = {c.id for c in classes if isinstance(c, ast.Name)} & event_classes
                if named:
                    offenders.setdefault(name, []).append(f"line {node.lineno}: {sorted(named)}")
    assert offenders == {}
