"""The shape of the package: data flows one way between pynn's modules (no
import cycles, not even ones dodged by imports inside functions), and facts the
C core owns (enum values and names, SIMD path names, arena offsets) reach Python
only through the binding."""
import ast
import os
import re

import numpy as np
import pytest

import pynn
from pynn import MLPClassifier, Perceptron, _arena, _core

PKG = os.path.dirname(pynn.__file__)
SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pynn")


def _modules():
    """{module name: source} of every Python module of the package."""
    folder = SRC if os.path.isdir(SRC) else PKG
    out = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            with open(os.path.join(folder, name), encoding="utf-8") as fh:
                out[name[:-3]] = fh.read()
    return out


def _imports(name, source, modules):
    """The package's modules that `name` imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                if node.module:  # from .mod import x
                    found.add(node.module.split(".")[0])
                else:            # from . import mod (or a name of __init__)
                    for alias in node.names:
                        known = alias.name in modules or alias.name == "_core"
                        found.add(alias.name if known else "__init__")
            elif node.level == 0 and node.module and node.module.split(".")[0] == "pynn":
                parts = node.module.split(".")
                found.add(parts[1] if len(parts) > 1 else "__init__")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "pynn":
                    found.add(parts[1] if len(parts) > 1 else "__init__")
    found.discard(name)
    return {m for m in found if m in modules or m == "_core"}


def test_no_import_cycles_among_modules():
    modules = _modules()
    graph = {name: _imports(name, src, modules) for name, src in modules.items()}
    # __main__ runs as a program; nothing imports it
    assert not any("__main__" in deps for deps in graph.values())
    # the package imports its modules; a module importing the package back is a cycle
    users_of_init = sorted(n for n, deps in graph.items() if "__init__" in deps
                           and n != "__main__")
    assert users_of_init == [], f"modules importing pynn's __init__: {users_of_init}"
    cycles = []

    def visit(node, path):
        for dep in sorted(graph.get(node, ())):
            if dep in path:
                cycles.append(path[path.index(dep):] + [dep])
            elif dep in graph:
                visit(dep, path + [dep])

    for start in graph:
        if start not in ("__init__", "__main__"):
            visit(start, [start])
    assert cycles == [], f"import cycles: {cycles[:5]}"


def test_the_layers_import_downwards_only():
    """validation -> arena/training -> base -> estimators: no lower layer imports
    a higher one."""
    modules = _modules()
    rank = {"_typing": 0, "_version": 0, "exceptions": 0, "_core": 0, "_platform": 0,
            "_progress": 1, "_validation": 1, "_sparse": 2, "_arena": 2, "ops": 2, "_persist": 3,
            "_training": 3, "_base": 4, "mlp": 5, "perceptron": 5, "plotting": 1,
            "datasets": 0}
    for name, src in modules.items():
        if name not in rank:
            continue
        for dep in _imports(name, src, modules):
            if dep in rank:
                assert rank[dep] < rank[name], f"{name} imports {dep}"


def _literal_tables(source):
    """String keys mapped to integer literals in the dicts of Python source."""
    keys = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values):
                if (isinstance(k, ast.Constant) and isinstance(k.value, str)
                        and isinstance(v, ast.Constant) and isinstance(v.value, int)):
                    keys.add(k.value)
    return keys


def test_enum_names_and_values_come_from_the_core():
    for table in (_core.ACTIVATIONS, _core.LOSSES, _core.SOLVERS):
        # consecutive values from 0: the whole enum, as pynn.h numbers it
        assert sorted(table.values()) == list(range(len(table)))
    assert set(_core.ACTIVATIONS) >= {"identity", "logistic", "tanh", "relu", "softmax",
                                      "step"}
    assert set(_core.SOLVERS) >= {"sgd", "adam"}
    assert _core.SIMD_PATHS[0] == "generic" and "avx2" in _core.SIMD_PATHS
    # one past the last value is refused by the core
    units = [3, 2]
    with pytest.raises(ValueError):
        _core.Net(units, len(_core.ACTIVATIONS), 0, 0)
    with pytest.raises(ValueError):
        _core.Net(units, 0, 0, len(_core.LOSSES))
    # and no Python file keeps its own table of those names
    names = set(_core.ACTIVATIONS) | set(_core.LOSSES) | set(_core.SOLVERS)
    found = {f"{name}.py": _literal_tables(src) for name, src in _modules().items()}
    pyx = os.path.join(SRC, "_core.pyx")
    if os.path.exists(pyx):  # the binding, in a source checkout (Cython: a pattern)
        with open(pyx, encoding="utf-8") as fh:
            found["_core.pyx"] = set(re.findall(r"""["']([a-z_0-9]+)["']\s*:\s*\d""",
                                                fh.read()))
    for name, keys in found.items():
        copied = keys & names
        assert not copied, f"pynn/{name} defines enum values of {sorted(copied)}"


@pytest.mark.parametrize("units", [[1, 1], [5, 3], [4, 7, 2], [3, 1, 6, 5]])
def test_arena_layout_is_the_cores(units):
    net = _core.Net(units, 0, 0, 0)
    lay = _arena.Layout(units)
    assert (lay.w_off, lay.b_off) == net.param_offsets() and lay.size == net.n_params
    # the public arrays are views exactly where the core reads each W_l and b_l
    m = MLPClassifier(hidden_layer_sizes=units[1:-1] or (2,))
    X = np.random.default_rng(0).standard_normal((10, units[0]))
    m.set_params(max_iter=1, tol=None).fit(X, np.arange(10) % 3)
    base = m._arena.__array_interface__["data"][0]
    isz = m._arena.itemsize
    for W, off in zip(m.coefs_, m._layout.w_off):
        assert W.__array_interface__["data"][0] == base + off * isz
    for b, off in zip(m.intercepts_, m._layout.b_off):
        assert b.__array_interface__["data"][0] == base + off * isz


def test_perceptron_views_follow_the_core_layout():
    X = np.random.default_rng(0).standard_normal((12, 4))
    p = Perceptron(max_iter=1, tol=None).fit(X, np.arange(12) % 3)
    (W,), (b,) = p._layout.split(p._arena)
    np.testing.assert_array_equal(p.coef_, W.T)
    np.testing.assert_array_equal(p.intercept_, b)


def test_version_is_defined_once():
    from pynn import _version

    assert pynn.__version__ == _version.__version__
    root = os.path.dirname(SRC)
    pyproject = os.path.join(root, "pyproject.toml")
    if os.path.exists(pyproject):
        with open(pyproject, encoding="utf-8") as fh:
            text = fh.read()
        assert not re.search(r'^version\s*=', text, re.M), "pyproject.toml repeats the version"
