"""The public API is typed: every public function and method annotates its
parameters and return value, the package ships py.typed, and mypy accepts it."""
import inspect
import os
import subprocess
import sys

import pytest

import pynn

PUBLIC_CLASSES = [pynn.Perceptron, pynn.MLPClassifier, pynn.MLPRegressor]
METHODS = ["fit", "partial_fit", "predict", "predict_proba", "predict_log_proba",
           "decision_function", "score", "save", "get_params", "set_params",
           "forward_layers", "loss_and_gradients"]


def public_callables():
    for cls in PUBLIC_CLASSES:
        for name in METHODS:
            fn = inspect.getattr_static(cls, name, None)
            if fn is None:
                continue
            fn = getattr(fn, "fn", fn)  # Perceptron.predict_proba is a conditional attribute
            yield f"{cls.__name__}.{name}", fn
    yield "load", pynn.load
    yield "plot_loss_curve", pynn.plot_loss_curve
    for name in ["activation", "activation_backward", "loss", "output_delta", "dense_forward",
                 "dense_backward", "sgd_update", "adam_update"]:
        yield f"ops.{name}", getattr(pynn.ops, name)


@pytest.mark.parametrize("name,fn", list(public_callables()), ids=lambda v: v
                         if isinstance(v, str) else "")
def test_public_callable_is_annotated_and_documented(name, fn):
    sig = inspect.signature(fn)
    missing = [p.name for p in sig.parameters.values()
               if p.name != "self" and p.annotation is inspect.Parameter.empty]
    assert not missing, f"{name}: parameters without type hints: {missing}"
    assert sig.return_annotation is not inspect.Signature.empty, f"{name}: no return type"
    assert fn.__doc__ and fn.__doc__.strip(), f"{name}: no docstring"


def test_package_ships_py_typed():
    assert os.path.isfile(os.path.join(os.path.dirname(pynn.__file__), "py.typed"))


def test_mypy_accepts_the_package(tmp_path):
    """mypy checks the installed package (found through its py.typed marker)."""
    pytest.importorskip("mypy")
    res = subprocess.run([sys.executable, "-m", "mypy", "--ignore-missing-imports",
                          "--no-incremental", "--cache-dir", os.devnull, "-p", "pynn"],
                         capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
