"""The parameter arena: one flat array holding every weight and bias of a
network, laid out by the C core, and the public arrays (``coefs_`` and
``intercepts_``, or a Perceptron's ``coef_`` and ``intercept_``) as views
into it.

The offsets come from the core (``pynn_param_offsets``); nothing here
re-derives them.  A *view spec* is ``(offset, shape, transposed)``: the public
array is the arena block at ``offset`` reshaped to ``shape`` (or, when
``transposed``, the transpose of the block shaped ``shape[::-1]``)."""
from __future__ import annotations

import os

import numpy as np

from . import _core


class Layout:
    """Where each W_l (n_in, n_out) and b_l (n_out,) of a network with layer
    sizes ``units`` lies in the arena, as the core computes it."""

    def __init__(self, units):
        self.units = tuple(int(u) for u in units)
        # the arena layout does not depend on activations or loss
        net = _core.Net(self.units, 0, 0, 0)
        self.w_off, self.b_off = net.param_offsets()
        self.size = int(net.n_params)

    def shapes(self):
        """((n_in, n_out), (n_out,)) of each layer."""
        return [((a, b), (b,)) for a, b in zip(self.units[:-1], self.units[1:])]

    def layer_specs(self):
        """The view specs of [W_0, b_0, W_1, b_1, ...]."""
        specs = []
        for (wshape, bshape), wo, bo in zip(self.shapes(), self.w_off, self.b_off):
            specs += [(wo, wshape, False), (bo, bshape, False)]
        return specs

    def split(self, flat):
        """Arrays shaped like the layers' weights and biases, from a flat array
        in arena order (e.g. a gradient): ``([W_0, W_1, ...], [b_0, b_1, ...])``."""
        ws = [flat[o:o + i * j].reshape(i, j) for ((i, j), _), o in zip(self.shapes(), self.w_off)]
        bs = [flat[o:o + j] for ((_, j), _), o in zip(self.shapes(), self.b_off)]
        return ws, bs


def _total_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


def allocate(units, dtype, bytes_per_param=None):
    """(layout, zeroed arena) for layer sizes `units`, failing fast with a clear
    MemoryError when training would need more than this machine's memory:
    `bytes_per_param` is what a fit holds per parameter (the estimator counts
    its arena-sized buffers; default: the arena alone)."""
    try:
        layout = Layout(units)
    except (MemoryError, OverflowError):
        raise MemoryError(f"a network with layer sizes {list(units)} has more parameters than "
                          f"this machine can address; use smaller hidden_layer_sizes") from None
    per = np.dtype(dtype).itemsize if bytes_per_param is None else bytes_per_param
    need = layout.size * per
    if need > _total_memory():
        raise MemoryError(
            f"a network with layer sizes {list(units)} has {layout.size:,} parameters "
            f"and needs about {need / 2**30:,.1f} GiB to train, more than this machine's "
            f"memory; use smaller hidden_layer_sizes")
    return layout, np.zeros(layout.size, dtype=dtype)


def views(arena, specs):
    """The public arrays: views of `arena` (writes go to the model)."""
    out = []
    for off, shape, transposed in specs:
        size = int(np.prod(shape))
        block = arena[off:off + size]
        out.append(block.reshape(shape[::-1]).T if transposed else block.reshape(shape))
    return out


def views_intact(arena, arrays, specs):
    """True if `arrays` are still exactly the views of `arena` that views() made
    (the user may have replaced them, not written into them)."""
    if len(arrays) != len(specs):
        return False
    base, isz = arena.__array_interface__["data"][0], arena.itemsize
    for v, (off, shape, transposed) in zip(arrays, specs):
        if (not isinstance(v, np.ndarray) or v.shape != shape or v.dtype != arena.dtype
                or not (v.T if transposed else v).flags.c_contiguous
                or v.__array_interface__["data"][0] != base + off * isz):
            return False
    return True


def pack(arrays, specs, size, dtype):
    """A new arena of `size` scalars holding `arrays` (checked against `specs`)."""
    if len(arrays) != len(specs):
        raise ValueError(f"the model's weight lists must hold {len(specs) // 2} arrays each")
    arena = np.empty(size, dtype=dtype)
    for v, (off, shape, transposed) in zip(arrays, specs):
        v = np.asarray(v)
        if v.shape != shape:
            raise ValueError(f"a weight array has shape {v.shape}, expected {shape}")
        arena[off:off + v.size] = (v.T if transposed else v).ravel()
    return arena


def realign(arr):
    """`arr` as the core reads it: aligned, writeable and C-contiguous.
    Unpickled buffers (pickle protocol 5, as Dask sends them) may sit at any
    byte offset."""
    return np.require(arr, requirements=["C", "A", "W"])
