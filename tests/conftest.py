"""Test the installed pynn (with its compiled core), never the source folder:
`python -m pytest` from the repository root would otherwise import ./pynn,
which has no built extension."""
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _ROOT]


import pytest  # noqa: E402

from pynn import _core  # noqa: E402  (the installed pynn: the path above is clean now)


@pytest.fixture(params=_core.simd_supported())
def simd(request):
    """Each SIMD path this CPU runs in turn, the previous one restored afterwards."""
    before = _core.simd_path()
    _core.set_simd_path(request.param)
    yield request.param
    _core.set_simd_path(before)
