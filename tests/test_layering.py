"""The import graph of the package: no cycles, and the layers of DEVELOPERS.md, one way.

Every ``import`` statement of every module counts, also those inside functions
(lazy imports): parsed with ``ast``, not run.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# module name -> source folder (setup.cfg installs models/ and datasets/ as sigmadelta.*)
PACKAGES = {"sigmadelta": ROOT / "sigmadelta", "sigmadelta.models": ROOT / "models",
            "sigmadelta.datasets": ROOT / "datasets"}

# DEVELOPERS.md, "Layout": a module imports only from its own layer or the ones before it.
LAYERS = [
    ["sigmadelta._version", "sigmadelta.kernels", "sigmadelta.cachetie"],
    ["sigmadelta.nodes", "sigmadelta.nodecheck", "sigmadelta.graph", "sigmadelta.fixedpoint",
     "sigmadelta.stats", "sigmadelta.energy", "sigmadelta.fidelity", "sigmadelta.frames", "sigmadelta.io",
     "sigmadelta.numeric", "sigmadelta.filelock", "sigmadelta.stop", "sigmadelta.blaslimit",
     "sigmadelta.torchlimit"],
    ["sigmadelta.slots", "sigmadelta.layout"],
    ["sigmadelta.weightops", "sigmadelta.ops"],
    ["sigmadelta.opcheck", "sigmadelta.program", "sigmadelta.loopcache", "sigmadelta.assemble"],
    ["sigmadelta.stageloop", "sigmadelta.engine", "sigmadelta.stages", "sigmadelta.profiling"],
    ["sigmadelta.convert", "sigmadelta.dense", "sigmadelta.reference", "sigmadelta.rounding",
     "sigmadelta.scales", "sigmadelta.compress", "sigmadelta.loaders", "sigmadelta.sources",
     "sigmadelta.runs", "sigmadelta.many"],
    ["sigmadelta"],  # the package's __init__: the public API
    ["sigmadelta.plots", "sigmadelta.cli", "sigmadelta.cli_many", "sigmadelta.demo",
     "sigmadelta.demo_face", "sigmadelta.demo_plots", "sigmadelta.models", "sigmadelta.datasets"],
]


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg, folder in PACKAGES.items():
        for f in folder.rglob("*.py"):
            parts = list(f.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join([pkg, *parts])] = f
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Package modules ``name`` imports (a name imported from a package counts as its submodule
    if there is one; the implicit import of parent packages does not count)."""
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[:len(base) - node.level + (1 if is_pkg else 0)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in mods and t != name)
    return out


@functools.cache  # parsed once for the module's tests (read only)
def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(m, p, mods) for m, p in mods.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (depth-first search), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def _layer(module: str) -> int:
    best = None
    for i, layer in enumerate(LAYERS):
        for entry in layer:
            if module == entry or (entry != "sigmadelta" and module.startswith(entry + ".")):
                if best is None or len(entry) > best[1]:
                    best = (i, len(entry))
    assert best is not None, f"{module} is in no layer of LAYERS (add it, and to DEVELOPERS.md)"
    return best[0]


def test_every_module_has_a_layer():
    for m in _modules():
        _layer(m)


def test_the_checker_finds_cycles():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_parser_sees_lazy_and_relative_imports():
    graph = _graph()
    assert "sigmadelta.io.record" in graph["sigmadelta.engine"]  # inside Simulator.run
    assert "sigmadelta.graph" in graph["sigmadelta.ops"]  # from . import graph as g
    assert "sigmadelta.models" in graph["sigmadelta.demo"]  # inside a function
    assert "sigmadelta" in graph["sigmadelta.demo"]  # import sigmadelta as sd


def test_no_import_cycles():
    assert _cycle(_graph()) is None, "import cycle: " + " -> ".join(_cycle(_graph()))


def test_imports_go_one_way_down_the_layers():
    bad = [f"{a} (layer {_layer(a)}) imports {b} (layer {_layer(b)})"
           for a, deps in sorted(_graph().items()) for b in sorted(deps) if _layer(b) > _layer(a)]
    assert not bad, "\n".join(bad)


def test_library_never_imports_models_or_datasets():
    """Only the command-line layer reaches for the shipped models and streams."""
    allowed = {"sigmadelta.cli", "sigmadelta.demo", "sigmadelta.demo_face", "sigmadelta.demo_plots"}
    bad = [a for a, deps in _graph().items()
           if a not in allowed and not a.startswith(("sigmadelta.models", "sigmadelta.datasets"))
           and any(d.startswith(("sigmadelta.models", "sigmadelta.datasets")) for d in deps)]
    assert not bad
