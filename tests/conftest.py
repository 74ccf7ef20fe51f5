"""Test the installed pynn (with its compiled core), never the source folder:
`python -m pytest` from the repository root would otherwise import ./pynn,
which has no built extension."""
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _ROOT]
