"""The core's own team barrier (csrc/dispatch.c: a counter and a generation,
spun on, then slept on through a futex): a team of two trains to the same bits
as one thread, with the waiters spinning (the default) and with every waiter
asleep at every barrier (OMP_WAIT_POLICY=passive: no spin, so each barrier
goes through futex wait and wake, where a lost wake-up would hang), and the
barriers a fit passes are counted (pynn_team_barriers, read by bench/syncs.py).
Each case runs in a subprocess with a timeout: a barrier bug hangs."""
import os
import subprocess
import sys
import textwrap

import pytest

import pynn

CHILD = textwrap.dedent(
    """
    import ctypes, hashlib, json, sys, warnings
    import numpy as np
    import pynn
    from pynn import _core

    warnings.simplefilter("ignore")
    count = ctypes.CDLL(_core.__file__).pynn_team_barriers
    count.restype = ctypes.c_uint64
    rng = np.random.default_rng(1)
    X = rng.standard_normal((6000, 64)).astype(sys.argv[1])
    y = rng.integers(0, 5, 6000)
    hidden = tuple(int(u) for u in sys.argv[2].split(","))
    batch = int(sys.argv[3])

    def run(threads):
        before = count()
        m = pynn.MLPClassifier(hidden, max_iter=3, tol=None, batch_size=batch,
                               random_state=0, n_threads=threads, dtype=sys.argv[1])
        m.fit(X, y)
        fit_barriers = count() - before
        p = m.predict_proba(X)
        digest = hashlib.sha256(b"".join(c.tobytes() for c in m.coefs_ + m.intercepts_)
                                + p.tobytes()).hexdigest()
        return digest, fit_barriers, m.loss_curve_

    one, two = run(1), run(2)
    print(json.dumps({"one": one, "two": two, "cpus": pynn.max_threads()}))
    """
)


def child(dtype, wait_policy, hidden="256,128", batch=128):
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if wait_policy:
        env["OMP_WAIT_POLICY"] = wait_policy
    proc = subprocess.run([sys.executable, "-c", CHILD, dtype, hidden, str(batch)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    import json
    return json.loads(proc.stdout.strip().splitlines()[-1])


# (hidden layers, batch): batches of 128 rows of a 64-256-128-5 network, whose
# first product (128 x 64 x 256) is over the bar of any team (PYNN_PAR_MIN_WORK);
# a 64-32-5 network on batches of 32 rows (32 x 64 x 32: 65,536 multiply-adds),
# over the lower bar of a chunk of training steps (PYNN_TRAIN_PAR_MIN_WORK) only
SHAPES = [("256,128", 128), ("32", 32)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("wait_policy", [None, "passive"])
@pytest.mark.parametrize("hidden,batch", SHAPES)
def test_team_of_two_trains_to_the_same_bits_spinning_or_asleep(dtype, wait_policy, hidden,
                                                                 batch):
    got = child(dtype, wait_policy, hidden, batch)
    (d1, n1, loss1), (d2, n2, loss2) = got["one"], got["two"]
    assert d1 == d2, "a team of two trained to other bits than one thread"
    assert loss1 == loss2
    assert len(loss1) == 3 and all(v == v for v in loss1)
    # one thread: no team, no barrier
    assert n1 == 0
    own_barrier = sys.platform.startswith("linux") and pynn.has_openmp()
    steps = 3 * -(-6000 // batch)
    if own_barrier and got["cpus"] >= 2:
        # a team ran (how many of the steps is the fit's to measure: with
        # n_threads=2, a step this short is timed on one thread too, and each
        # step syncs 3-9 times, and the fit's final check up to 7)
        assert 0 < n2 <= 9 * steps + 16, n2
    elif not own_barrier:
        assert n2 == 0


def test_a_tiny_network_trains_on_one_thread():
    """64-32-5 on batches of 16 rows (32,768 multiply-adds in its first product)
    is under the training bar: no team, whatever n_threads says."""
    got = child("float64", None, "32", 16)
    assert got["one"][0] == got["two"][0]
    assert got["one"][1] == got["two"][1] == 0
