"""The README's Python examples run as written (in order, sharing one namespace)."""
import pathlib
import re

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_examples_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2
    namespace = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    out = capsys.readouterr().out
    acc = float(re.search(r"test accuracy ([0-9.]+)", out).group(1))
    assert acc >= 0.95
    assert "[(64, 64), (64, 10)]" in out
    # the inspectable-math example rebuilt the model's own output-layer gradient
    assert namespace["dW1"].shape == namespace["clf"].coefs_[1].shape
    assert namespace["db1"].shape == namespace["clf"].intercepts_[1].shape
    # the feature sections: early stopping, progress lines, a saved model, Dask
    assert float(re.search(r"best validation accuracy ([0-9.]+)", out).group(1)) > 0.9
    assert len(re.findall(r"^Iteration \d+, loss = ", out, flags=re.M)) == 3
    assert re.search(r"saved [0-9,]+ bytes; loaded a MLPClassifier", out)
    assert float(re.search(r"cv accuracy ([0-9.]+)", out).group(1)) > 0.8
    assert float(re.search(r"incremental: held-out accuracy ([0-9.]+)", out).group(1)) > 0.8
