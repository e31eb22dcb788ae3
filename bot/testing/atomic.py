"""Every atomic step of bot/store, found in its source and seen running: the cluster's proof.

`atomic_sites()` reads the source of bot/store (its syntax tree, not a list kept by hand) for every
Lua script (`register_script(...)`), every MULTI/EXEC (`pipeline(...)` whose `transaction` is not the
literal False: redis-py's default is a transaction) and every `watch(...)`, each by file and line.
`StepRecorder(client)` wraps a client before the stores are built on it and records, by the same file
and line, each of those steps the code runs, and every CROSSSLOT refusal (the server's, or the
cluster client's own check). A test then runs the bot on a real Redis Cluster and asserts that every
site ran and nothing was refused: a new script or transaction that no test reaches fails it.
"""

from __future__ import annotations

import ast
import inspect
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from redis.commands.core import Script
from redis.exceptions import ClusterCrossSlotError, CrossSlotTransactionError

from bot.settings import REPO_ROOT

STORE = REPO_ROOT / "bot" / "store"


@dataclass(frozen=True, order=True)
class Site:
    """Where an atomic step is made: `bot/store/<file>.py`, its line, its kind and enclosing function."""

    file: str
    line: int
    kind: str = ""  # "script", "multi" or "watch"
    function: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line} {self.kind} in {self.function}"


def atomic_sites(directory: Path = STORE) -> set[Site]:
    """Every Lua script, MULTI/EXEC and WATCH in the store's source, by file and line."""
    found: set[Site] = set()
    for path in sorted(directory.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        relative = path.relative_to(REPO_ROOT).as_posix()
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                kind = _kind(node)
                if kind and not _is_super(node.func.value):  # the driver's own plumbing (ClusterClient)
                    found.add(Site(relative, node.lineno, kind, function.name))
    # A call inside a nested function is seen from both functions: keep the innermost.
    by_place: dict[tuple[str, int], Site] = {}
    for site in sorted(found, key=lambda site: (site.file, site.line)):
        by_place.setdefault((site.file, site.line), site)
    return set(by_place.values())


def _is_super(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"


def _kind(call: ast.Call) -> str:
    name = call.func.attr if isinstance(call.func, ast.Attribute) else ""
    if name == "register_script":
        return "script"
    if name == "watch":
        return "watch"
    if name == "pipeline":
        transaction = next((kw.value for kw in call.keywords if kw.arg == "transaction"), None)
        if transaction is None and call.args:
            transaction = call.args[0]
        if isinstance(transaction, ast.Constant) and transaction.value is False:
            return ""  # a plain pipeline: not atomic, may span slots
        return "multi"
    return ""


def _store_frame() -> FrameType | None:
    """The innermost frame running bot/store code (the caller of register_script, pipeline, watch)."""
    frame = inspect.currentframe()
    while frame is not None:
        filename = Path(frame.f_code.co_filename)
        if filename.parent == STORE:
            return frame
        frame = frame.f_back
    return None


def _here() -> tuple[str, int] | None:
    frame = _store_frame()
    if frame is None:
        return None
    info = inspect.getframeinfo(frame, context=0)
    line = info.positions.lineno if info.positions and info.positions.lineno else frame.f_lineno
    return Path(frame.f_code.co_filename).relative_to(REPO_ROOT).as_posix(), line


def is_crossslot(exc: BaseException) -> bool:
    """A refusal because a step's keys lie in more than one hash slot."""
    text = str(exc)
    return (isinstance(exc, (ClusterCrossSlotError, CrossSlotTransactionError)) or "CROSSSLOT" in text
            or "same slot" in text or "same key slot" in text)


@dataclass
class StepRecorder:
    """Records the atomic steps run on `client` by the source line that made them (see the module doc).

    Install it before the stores are built on the client (scripts are registered in their
    constructors): `recorder = StepRecorder(client)`, then `BotService(settings, client=client)`.
    """

    client: Any
    ran: Counter = field(default_factory=Counter)  # (file, line) -> times run
    refused: list[str] = field(default_factory=list)  # CROSSSLOT refusals, with where and what

    def __post_init__(self) -> None:
        recorder = self
        client = self.client
        register, pipeline = client.register_script, client.pipeline

        class RecordedScript(Script):
            place: tuple[str, int] | None = None

            def __call__(self, keys=None, args=None, client=None):  # type: ignore[override]
                recorder._note(self.place, f"script with keys {list(keys or [])}")
                try:
                    return super().__call__(keys=keys, args=args, client=client)
                except Exception as exc:
                    recorder._check(exc, self.place)
                    raise

        def register_script(script: Any) -> Script:
            registered = register(script)
            recorded = RecordedScript(registered.registered_client, registered.script)
            recorded.place = _here()
            return recorded

        def make_pipeline(*args: Any, **kwargs: Any) -> Any:
            pipe = pipeline(*args, **kwargs)
            place = _here()
            execute = pipe.execute
            transaction = kwargs.get("transaction", args[0] if args else True)

            def run(*run_args: Any, **run_kwargs: Any) -> Any:
                if transaction:
                    recorder._note(place, "MULTI " + " ".join(str(command[0]) for command, _ in _stack(pipe)))
                try:
                    return execute(*run_args, **run_kwargs)
                except Exception as exc:
                    recorder._check(exc, place)
                    raise

            pipe.execute = run
            return pipe

        client.register_script = register_script
        client.pipeline = make_pipeline

    def _note(self, place: tuple[str, int] | None, what: str) -> None:
        if place is not None:
            self.ran[place] += 1

    def _check(self, exc: BaseException, place: tuple[str, int] | None) -> None:
        if is_crossslot(exc):
            where = f"{place[0]}:{place[1]}" if place else "outside bot/store"
            self.refused.append(f"{where}: {exc.__class__.__name__}: {exc}")

    def missing(self, sites: set[Site]) -> list[Site]:
        """The sites never run."""
        return sorted(site for site in sites if (site.file, site.line) not in self.ran)


def _stack(pipe: Any) -> list[tuple[tuple[Any, ...], Any]]:
    """(args, options) of each command queued on a pipeline, single server or cluster."""
    stack = getattr(pipe, "command_stack", None) or []
    rows = []
    for item in stack:
        if isinstance(item, tuple):
            rows.append(item)
        else:  # a cluster pipeline's PipelineCommand
            rows.append((tuple(getattr(item, "args", ())), getattr(item, "options", {})))
    return rows
