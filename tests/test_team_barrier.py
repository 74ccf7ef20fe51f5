"""The core's own team barrier (csrc/dispatch.c: a counter and a generation,
spun on, then slept on through a futex): a team of two trains to the same bits
as one thread, with the waiters spinning (the default) and with every waiter
asleep at every barrier (OMP_WAIT_POLICY=passive: no spin, so each barrier
goes through futex wait and wake, where a lost wake-up would hang), and the
barriers it passes are counted (pynn_team_barriers, read by bench/syncs.py).
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

    def run(threads):
        before = count()
        # batches of 128 rows of a 64-256-128-5 network: its first product
        # (128 x 64 x 256) is over the core's bar for a team (PYNN_PAR_MIN_WORK)
        m = pynn.MLPClassifier((256, 128), max_iter=3, tol=None, batch_size=128,
                               random_state=0, n_threads=threads, dtype=sys.argv[1])
        m.fit(X, y)
        p = m.predict_proba(X)
        digest = hashlib.sha256(b"".join(c.tobytes() for c in m.coefs_ + m.intercepts_)
                                + p.tobytes()).hexdigest()
        return digest, count() - before, m.loss_curve_

    one, two = run(1), run(2)
    print(json.dumps({"one": one, "two": two, "cpus": pynn.max_threads()}))
    """
)


def child(dtype, wait_policy):
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if wait_policy:
        env["OMP_WAIT_POLICY"] = wait_policy
    proc = subprocess.run([sys.executable, "-c", CHILD, dtype], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    import json
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("wait_policy", [None, "passive"])
def test_team_of_two_trains_to_the_same_bits_spinning_or_asleep(dtype, wait_policy):
    got = child(dtype, wait_policy)
    (d1, n1, loss1), (d2, n2, loss2) = got["one"], got["two"]
    assert d1 == d2, "a team of two trained to other bits than one thread"
    assert loss1 == loss2
    assert len(loss1) == 3 and all(v == v for v in loss1)
    # one thread: no team, no barrier
    assert n1 == 0
    own_barrier = sys.platform.startswith("linux") and pynn.has_openmp()
    if own_barrier and got["cpus"] >= 2:
        # 3 epochs of 47 steps, each step several phases (forward layers,
        # output delta, backward layers): at least 3 barriers a step
        assert n2 >= 3 * 3 * 47, n2
    elif not own_barrier:
        assert n2 == 0
