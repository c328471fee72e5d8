"""Import hygiene of moaw_core: no import cycles (function-level imports included), no private names borrowed
across modules, CLI verb modules never imported as libraries, `--help` imports no verb (nor accelerate), and the
package `__init__`s re-export their public names lazily."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "moaw_core"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """(module, name or None, line) for every import, at any depth, outside `if TYPE_CHECKING:` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for a in node.names:
                yield node.module, a.name, node.lineno
        stack.extend(ast.iter_child_nodes(node))


def _graph():
    modules = {_module_name(p): p for p in PKG.rglob("*.py")}
    edges: dict[str, dict[str, list]] = {m: {} for m in modules}
    for m, path in modules.items():
        for mod, name, line in _imports(ast.parse(path.read_text())):
            if not mod.startswith("moaw_core"):
                continue
            if name and f"{mod}.{name}" in modules:  # `from package import module`
                edges[m].setdefault(f"{mod}.{name}", []).append((None, line))
            else:
                edges[m].setdefault(mod, []).append((name, line))
    return modules, edges


def _cycles(edges) -> list[list[str]]:
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, {}):
            if w not in edges:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges[v]:
                found.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    _, edges = _graph()
    cycles = _cycles(edges)
    detail = [(a, b, edges[a][b]) for comp in cycles for a in comp for b in edges[a] if b in comp]
    assert cycles == [], detail


def test_no_private_names_across_modules():
    _, edges = _graph()
    bad = []
    for importer, targets in edges.items():
        for target, uses in targets.items():
            private_module = target.rpartition(".")[2].startswith("_") and not target.endswith("__main__")
            if private_module and target.rpartition(".")[0] != importer.rpartition(".")[0]:
                bad.append(f"{importer} imports the private module {target} of another package")
            for name, line in uses:
                if name and name.startswith("_") and name != "__version__":
                    bad.append(f"{importer}:{line} imports {target}.{name}")
    assert bad == []


def _verbs() -> dict[str, str]:
    tree = ast.parse((PKG / "__main__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "_VERBS":
            return {k: v[0] for k, v in ast.literal_eval(node.value).items()}
    raise AssertionError("moaw_core/__main__.py: _VERBS not found")


def _loaded_after(code_args: list[str]) -> list[str]:
    code = ("import runpy, sys, json\n"
            f"sys.argv = ['moaw_core'] + {code_args!r}\n"
            "try:\n    runpy.run_module('moaw_core', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "sys.stderr.write('\\n' + json.dumps(sorted(sys.modules)))\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    return json.loads(res.stderr.strip().splitlines()[-1])


def test_help_imports_no_verb_and_no_accelerate():
    verb_modules = set(_verbs().values())
    loaded = _loaded_after(["--help"])
    assert not verb_modules & set(loaded), sorted(verb_modules & set(loaded))
    assert not any(m == "accelerate" or m.startswith("accelerate.") for m in loaded)
    assert not any(m == "torch" for m in loaded), "--help should not even import torch"


def test_a_verb_help_imports_only_that_verb():
    verbs = _verbs()
    loaded = set(_loaded_after(["predict", "--help"]))
    assert verbs["predict"] in loaded
    assert not (set(verbs.values()) - {verbs["predict"]}) & loaded
    assert "accelerate" not in loaded
def test_verb_modules_are_not_imported_as_libraries():
    """A verb module (parsing, printing, files) is an entry point: shared code lives in a library module
    (engine.bundle, metrics.report, data.mtbench, ...)."""
    verb_modules = set(_verbs().values())
    modules, edges = _graph()
    bad = [f"{m} imports {t}" for m, targets in edges.items() for t in targets
           if t in verb_modules and m != "moaw_core.__main__"]
    for folder in ("nodes", "bench"):  # scripts/ may drive a verb (tune_demo tunes the demo's settings)
        for path in sorted((ROOT / folder).glob("*.py")):
            for mod, name, line in _imports(ast.parse(path.read_text())):
                full = f"{mod}.{name}" if name else mod
                if mod in verb_modules or full in verb_modules:
                    bad.append(f"{folder}/{path.name}:{line} imports {full}")
    assert bad == []




@pytest.mark.parametrize("package", sorted(p.parent.name for p in PKG.glob("*/__init__.py")))
def test_package_init_is_lazy(package):
    """Importing a subpackage imports none of its modules (nor torch); its public names still resolve."""
    code = (f"import sys, json, moaw_core.{package} as p\n"
            f"eager = sorted(m for m in sys.modules if m.startswith('moaw_core.{package}.'))\n"
            "names = list(getattr(p, '__all__', []))\n"
            "print(json.dumps({'eager': eager, 'torch': 'torch' in sys.modules, 'names': names}))\n"
            "missing = [n for n in names if getattr(p, n, None) is None]\n"
            "assert not missing, missing\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["eager"] == [] and not out["torch"], out
    assert out["names"] or package in ("cli",), f"moaw_core.{package} re-exports no public names"
