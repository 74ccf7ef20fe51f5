"""What a published pynn carries: its distribution name, licence and version in the
installed metadata, install hints that name the right distribution, and an import
that pulls in none of the optional heavy packages. (.ci/release checks the built
sdist and wheel themselves: tag, vendored OpenMP runtime, size, import time.)"""
import importlib.util
import os
import re
import subprocess
import sys
from importlib import metadata


import pynn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIST = "pynn-mlp"  # "pynn" on PyPI is PyNN, an unrelated neuronal-network simulator


def test_installed_metadata_names_the_distribution_its_version_and_licence():
    meta = metadata.metadata(DIST)
    assert meta["Name"] == DIST
    assert meta["Version"] == pynn.__version__
    assert meta["License-Expression"] == "BSD-3-Clause"
    requires = metadata.requires(DIST) or []
    assert any(r.startswith("numpy") for r in requires)
    # the optional packages stay optional: only in extras
    for name in ("scikit-learn", "matplotlib", "dask", "pandas"):
        assert all(not r.startswith(name) or "extra ==" in r for r in requires), name


def test_the_licence_file_ships_with_the_source():
    with open(os.path.join(ROOT, "LICENSE"), encoding="utf-8") as fh:
        text = fh.read()
    assert text.startswith("BSD 3-Clause License")
    assert "Redistribution and use in source and binary forms" in text


def _sources():
    folder = os.path.join(ROOT, "pynn")
    for name in sorted(os.listdir(folder)):
        if name.endswith((".py", ".pyx")):
            with open(os.path.join(folder, name), encoding="utf-8") as fh:
                yield name, fh.read()


def test_install_hints_name_the_pynn_mlp_distribution():
    """A message that tells the user to `pip install` pynn must name pynn-mlp:
    `pip install pynn` would fetch PyNN."""
    wrong = re.compile(r"""pip install\s+['"]?pynn(?![-\w])""")
    found = [(name, m.group(0)) for name, text in _sources() for m in wrong.finditer(text)]
    assert found == []
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        readme = fh.read()
    assert wrong.findall(readme) == []
    assert f'pip install "{DIST}' in readme or f"pip install {DIST}" in readme


def test_import_pynn_pulls_in_no_optional_heavy_package():
    """scikit-learn, scipy, matplotlib, pandas and dask are all installed in the test
    environment; `import pynn` (and a fit and prediction on dense data) loads none."""
    code = (
        "import sys, numpy as np, pynn\n"
        "X = np.random.default_rng(0).normal(size=(60, 4)); y = (X[:, 0] > 0).astype(int)\n"
        "pynn.MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, tol=None).fit(X, y).predict(X)\n"
        "heavy = ('sklearn', 'scipy', 'matplotlib', 'pandas', 'dask', 'numpy.typing')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    for name in ("sklearn", "scipy", "matplotlib", "pandas", "dask"):
        assert importlib.util.find_spec(name) is not None, f"{name} (a test extra) is missing"
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True,
                         capture_output=True, text=True, cwd=os.path.dirname(ROOT)).stdout
    assert out.strip() == ""
