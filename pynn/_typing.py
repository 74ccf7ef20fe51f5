"""Names for pynn's type hints (Self from typing_extensions-free fallbacks)."""
import sys
from typing import Any, BinaryIO, Callable, Dict, List, Optional, Tuple, TypeVar, Union

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover - older Pythons: a TypeVar reads the same to type checkers
    Self = TypeVar("Self")

__all__ = ["Any", "BinaryIO", "Callable", "Dict", "List", "Optional", "Self", "Tuple", "Union"]
