"""bench/products.py times every matrix product of a training step against numpy's
matmul: a quick run prints one Markdown table per case and dtype, with a row per
product and a step total, and writes the same figures as JSON."""
import json
import os
import re
import subprocess
import sys

import pytest

PRODUCTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "bench", "products.py")

# "| L1 x@W | 128x784x256 | 764.0 | 723.5 | 67.3 | 71.2 | 0.944 | 0.947 |"
ROW = re.compile(r"^\| (L\d \S+) \| (\d+)x(\d+)x(\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) "
                 r"\| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$")


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs Linux affinity")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_quick_products_run(tmp_path, dtype):
    """(bfloat16: the mode's products, checked by the script against numpy on
    rounded operands before timing: an exit status otherwise)"""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the script must find the installed pynn by itself
    out_json = tmp_path / "products.json"
    proc = subprocess.run(
        [sys.executable, PRODUCTS, "--quick", "--cases", "mnist-like", "--dtype", dtype,
         "--json", str(out_json)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    out = proc.stdout
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{proc.stderr}"
    rows = [ROW.match(line) for line in out.splitlines()]
    rows = [m for m in rows if m]
    # 784-256-128-10: three forward, three weight-gradient, two input-gradient products
    names = [m.group(1) for m in rows]
    assert names == ["L1 x@W", "L2 x@W", "L3 x@W", "L3 x^T@d", "L3 d@W^T", "L2 x^T@d",
                     "L2 d@W^T", "L1 x^T@d"], out
    for m in rows:
        assert all(float(m.group(i)) > 0 for i in range(5, 11)), m.group(0)
    assert re.search(r"^\| \*\*step total\*\* \|.*\| \*\*[\d.]+\*\* \|", out, re.M), out

    res = json.loads(out_json.read_text())["results"]
    assert len(res) == 1 and res[0]["case"] == "mnist-like" and res[0]["dtype"] == dtype
    prods = res[0]["products"]
    assert [(p["m"], p["k"], p["n"]) for p in prods][:3] == [
        (128, 784, 256), (128, 256, 128), (128, 128, 10)]
    total = res[0]["total"]
    assert total["flop"] == sum(p["flop"] for p in prods)
    # the products of a step are its whole matrix work (bench/cases.py's count)
    assert total["flop"] == 128 * (6 * (784 * 256 + 256 * 128 + 128 * 10) - 2 * 784 * 256)
    assert total["pynn_s"] == pytest.approx(sum(p["pynn_s"] for p in prods))
    assert total["ratio"] > 0 and total["pynn_gflops"] > 0


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs Linux affinity")
def test_products_of_a_full_batch(tmp_path):
    """--batch replaces the case's batch: the products of a gradient over that
    many rows (3,000: the forward products run in chunks of rows)."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    out_json = tmp_path / "products.json"
    proc = subprocess.run(
        [sys.executable, PRODUCTS, "--quick", "--cases", "mnist-like", "--dtype", "float64",
         "--batch", "3000", "--json", str(out_json)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "batch 3000, float64" in proc.stdout
    res = json.loads(out_json.read_text())["results"][0]
    assert res["batch"] == 3000
    assert [(p["name"], p["m"], p["k"], p["n"]) for p in res["products"]] == [
        ("L1 x@W", 3000, 784, 256), ("L2 x@W", 3000, 256, 128), ("L3 x@W", 3000, 128, 10),
        ("L3 x^T@d", 128, 3000, 10), ("L3 d@W^T", 3000, 10, 128),
        ("L2 x^T@d", 256, 3000, 128), ("L2 d@W^T", 3000, 128, 256),
        ("L1 x^T@d", 784, 3000, 256)]
    assert all(p["pynn_s"] > 0 and p["ratio"] > 0 for p in res["products"])
    bad = subprocess.run([sys.executable, PRODUCTS, "--batch", "0"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--batch must be >= 1" in bad.stderr
