"""The planner of a fit's chunks of training steps (pynn._training.ChunkPlanner):
which thread count each chunk runs on, and how many steps."""
import pytest

from pynn import _core, _training
from pynn._training import ChunkPlanner


@pytest.fixture
def two_cpus(monkeypatch):
    """A machine of two processors, whatever this one has."""
    monkeypatch.setattr(_core, "threads", lambda n: max(1, min(n, 2)) if n else 2)
    monkeypatch.setattr(_core, "max_threads", lambda: 2)


def steps_for(seconds, rate):
    return max(1, int(rate * seconds))


def test_given_threads_and_short_steps_one_thread_is_timed_too(two_cpus):
    p = ChunkPlanner(2)
    assert p.options == [2]
    assert p.next() == (2, 1)             # nothing known: one step
    p.record(2, 1000, 0.010)              # 10 us a step: under _SOLO_PROBE_STEP_SECONDS
    assert p.options == [2, 1]
    threads, steps = p.next()             # a probe of one thread, a quarter chunk long
    assert threads == 1
    assert steps == steps_for(_training._CHUNK_SECONDS / ChunkPlanner._PROBE_SHARE, 1e5)
    p.record(1, steps, steps / 0.9e5)     # one thread: 10% slower
    assert p.next() == (2, steps_for(_training._CHUNK_SECONDS, 1e5))


def test_given_threads_and_long_steps_only_those_threads(two_cpus):
    p = ChunkPlanner(2)
    p.next()
    p.record(2, 50, 0.010)                # 200 us a step: all work
    assert p.options == [2]
    assert p.next() == (2, steps_for(_training._CHUNK_SECONDS, 5000))


def test_one_thread_given_is_never_a_team(two_cpus):
    p = ChunkPlanner(1)
    p.record(1, 1000, 0.010)
    assert p.options == [1] and p.next()[0] == 1


def test_fewer_threads_win_only_by_the_edge_and_after_two_slow_team_chunks(two_cpus):
    p = ChunkPlanner(2)
    p.record(2, 1000, 0.010)              # 100k steps/s
    p.record(1, 1000, 1000 / 1.1e5)       # 110k: within _TEAM_EDGE of the team
    assert p.next()[0] == 2
    p.record(1, 1000, 1000 / 2e5)         # one thread now twice as fast
    # the team was timed once: timed again (a probe) before it is dropped
    threads, steps = p.next()
    assert threads == 2 and steps == steps_for(
        _training._CHUNK_SECONDS / ChunkPlanner._PROBE_SHARE, 1e5)
    p.record(2, steps, steps / 1e5)       # slow again
    assert p.next() == (1, steps_for(_training._CHUNK_SECONDS, 2e5))
    p.record(2, 1000, 0.005)              # the team at 200k: within the edge, it wins
    assert p.next()[0] == 2


def test_a_short_chunk_is_timed_again(two_cpus):
    p = ChunkPlanner(2)
    p.record(2, 10, 0.0001)               # shorter than _SHORT_SECONDS
    assert p.options == [2]               # no verdict on the step's length from it
    assert p.next() == (2, steps_for(_training._CHUNK_SECONDS, 1e5))
    p.record(2, 5000, 0.05)               # timed well now: 10 us a step
    assert p.options == [2, 1]


def test_threads_not_given_measure_the_most_and_one(two_cpus):
    p = ChunkPlanner(None)
    assert p.options == [2, 1]
    assert p.next() == (2, 1)
    p.record(2, 50, 0.010)
    assert p.next()[0] == 1               # then one thread, whatever the step's length


def test_one_slow_team_chunk_is_not_a_verdict_two_in_a_row_are(two_cpus):
    p = ChunkPlanner(2)
    p.record(2, 1000, 0.010)              # 100k steps/s
    p.record(1, 1000, 1000 / 0.9e5)       # one thread: 90k
    assert p.next()[0] == 2
    p.record(2, 1000, 0.020)              # a slow chunk (50k): the better of the last two
    assert p.next() == (2, steps_for(_training._CHUNK_SECONDS, 1e5))
    p.record(2, 1000, 0.020)              # slow again: one thread from now on
    assert p.next() == (1, steps_for(_training._CHUNK_SECONDS, 0.9e5))


def test_the_speeds_measured_stay_with_the_model_for_its_next_fit():
    """A partial_fit loop (or repeated warm starts) keeps its planner, so its thread
    counts are measured again every _REPROBE_SECONDS, not at every call; another
    batch size or thread count starts afresh."""
    import numpy as np

    import pynn

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((200, 8)), rng.integers(0, 3, 200)
    m = pynn.MLPClassifier((16,), batch_size=20, n_threads=2, random_state=0)
    m.partial_fit(X, y, classes=[0, 1, 2])
    planner = m._scratch.planner
    assert isinstance(planner, ChunkPlanner) and planner.rate
    m.partial_fit(X, y)
    assert m._scratch.planner is planner
    m.set_params(batch_size=40)
    m.partial_fit(X, y)
    assert m._scratch.planner is not planner and m._scratch.planner.key[1] == 40
