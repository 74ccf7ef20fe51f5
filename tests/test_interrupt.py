"""Ctrl-C during fit: KeyboardInterrupt within 0.5 s, and a usable model."""
import textwrap

from helpers import interrupt_child

CHILD = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    import pynn

    rng = np.random.default_rng(0)
    X = rng.standard_normal((4000, 256)).astype(np.float32)
    y = rng.integers(0, 10, 4000)
    model = pynn.MLPClassifier((512, 512), max_iter=100000, tol=None, batch_size=32,
                               random_state=0)
    print("READY", flush=True)
    try:
        model.fit(X, y)
        print(json.dumps({"finished": True}), flush=True)
    except KeyboardInterrupt:
        caught = time.time()
        finite = all(np.isfinite(c).all() for c in model.coefs_ + model.intercepts_)
        pred = model.predict(X[:5])
        print(json.dumps({"finished": False, "caught": caught, "finite": bool(finite),
                          "n_pred": int(len(pred)), "n_iter": model.n_iter_}), flush=True)
    """
)


def test_sigint_stops_fit_quickly_and_leaves_a_usable_model(tmp_path):
    # 1.5 s: well inside the first epoch's steps
    result, sent = interrupt_child(CHILD, tmp_path, delay=1.5, timeout=30)
    assert result["finished"] is False
    assert result["caught"] - sent < 0.5
    assert result["finite"] is True
    assert result["n_pred"] == 5
