"""The package's import graph: no circles, layers that only point down.

The graph is read from the source with :mod:`ast` (nothing is imported), every
``import``/``from ... import`` of the package's own modules counted, at module
level or inside a function. The layers, lowest first::

    0 core     exceptions, _version, _legacy, utils._* (tags, optional imports,
               docstrings, random, lazy exports, memos)
    1 io       reading image cells, integrity, the deferred-image interface
    2 table    the subject table's pure-pandas rules, validation, manifests
      dicom    DICOM folder trees to tables, de-identification, lossless NIfTI
    3 concepts images, harmonization, radiomics, model_selection, datasets
    4 users    nets (tensors and patch nets over images), qc
    5 top      the package __init__, demo, _cli, utils.discovery,
               utils.estimator_checks, utils._test_common

A module imports its own subpackage or a lower layer, never a sibling on its
own layer nor a higher one. Imports inside functions of the package's own
modules are kept to the top layer (start-up speed of the CLI and the demo):
anywhere else they hid import circles.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sklearn_medprep"

CORE = {"exceptions", "_version", "_legacy", "utils"}
TOP = {"", "demo", "_demo_search", "_cli", "utils.discovery", "utils.estimator_checks",
       "utils._test_common"}
LAYERS = {
    "core": 0,
    "io": 1,
    "table": 2,
    "dicom": 2,
    "filters": 2,
    "images": 3,
    "harmonization": 3,
    "radiomics": 3,
    "model_selection": 3,
    "datasets": 3,
    "nets": 4,
    "qc": 4,
    "top": 5,
}


def _modules():
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_package)
    return out


MODULES = _modules()


def unit(module):
    """The layer unit of a module: 'core', 'top' or its subpackage."""
    if module in TOP:
        return "top"
    head = module.split(".")[0]
    if module in CORE or head == "utils" or head in CORE:
        return "core"
    return head


def _resolve(module, is_package, node):
    if node.level == 0:
        name = node.module or ""
        if not name.startswith("sklearn_medprep"):
            return None
        return name[len("sklearn_medprep."):] if "." in name else ""
    base = module.split(".") if module else []
    if not is_package:
        base = base[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def edges():
    """Yield (module, imported module, line, inside a function) for every import."""
    for module, (path, is_package) in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        in_function = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                in_function.update(id(n) for n in ast.walk(node) if n is not node)
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.ImportFrom):
                target = _resolve(module, is_package, node)
                if target is None:
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}".lstrip(".")
                    targets.append(sub if sub in MODULES else target)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "sklearn_medprep":
                        targets.append(alias.name[len("sklearn_medprep."):])
            for target in targets:
                assert target in MODULES, f"{module} imports unknown {target!r}"
                yield module, target, node.lineno, id(node) in in_function


EDGES = list(edges())


def test_graph_was_read():
    # the parse found the package's own imports (a test that cannot pass empty)
    assert len(MODULES) > 60 and len(EDGES) > 150
    pairs = {(a, b) for a, b, _, _ in EDGES}
    assert ("harmonization._covbat", "harmonization._combat") in pairs
    assert ("radiomics._extractor", "table._checks") in pairs


def test_layers_point_down():
    wrong = []
    for module, target, line, _ in EDGES:
        a, b = unit(module), unit(target)
        if a != b and LAYERS[b] >= LAYERS[a]:
            wrong.append(f"{module}:{line} ({a}, layer {LAYERS[a]}) imports {target} "
                         f"({b}, layer {LAYERS[b]})")
    assert not wrong, "\n".join(wrong)


def test_every_module_has_a_layer():
    assert {unit(m) for m in MODULES} <= set(LAYERS)


def test_no_import_circles():
    graph = {}
    for module, target, _, _ in EDGES:
        if module != target:
            graph.setdefault(module, set()).add(target)
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_own_imports_inside_functions_only_at_the_top():
    hidden = [f"{module}:{line} imports {target}" for module, target, line, inside
              in EDGES if inside and unit(module) != "top"]
    assert not hidden, "\n".join(hidden)


@pytest.mark.parametrize(
    "module, target, expected",
    [
        ("harmonization._combat", "radiomics._extractor", "sibling"),
        ("io._read", "images._deferred", "upward"),
        ("qc._plot", "harmonization._core", None),
        ("images._subject", "table._checks", None),
    ],
)
def test_rule_itself(module, target, expected):
    a, b = unit(module), unit(target)
    verdict = None
    if a != b and LAYERS[b] == LAYERS[a]:
        verdict = "sibling"
    elif a != b and LAYERS[b] > LAYERS[a]:
        verdict = "upward"
    assert verdict == expected
