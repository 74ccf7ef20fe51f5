"""PyTorch, eager ("torch") and compiled ("torch.compile"): nn.Sequential of
Linear/ReLU, CrossEntropyLoss and optim.SGD in a Python loop over batches.
For the bfloat16 run: "torch.autocast" (float32 weights and data, the forward
pass and the loss under torch.autocast("cpu", dtype=torch.bfloat16)) and
"torch.bf16" (model and data converted to torch.bfloat16, SGD on bf16 weights)."""
import contextlib

import numpy as np

from cases import LEARNING_RATE
from peers import Peer, Setup
from reference import Data


def _model(params, dtype):
    """nn.Sequential of Linear/ReLU holding `params` (numpy (n_in, n_out) weights;
    Linear keeps W^T), in torch dtype `dtype` (a name: "float32", "bfloat16")."""
    import torch
    from torch import nn
    mods = []
    for i, (W, b) in enumerate(params):
        lin = nn.Linear(*W.shape, dtype=getattr(torch, dtype))
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W.T.copy()))
            lin.bias.copy_(torch.from_numpy(b))
        mods.append(lin)
        if i < len(params) - 1:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


class Torch(Peer):
    compiled = False
    model_dtype = None      # the model's and data's torch dtype name; None: the run's

    def load(self, dtype, threads):
        import torch
        torch.set_num_threads(threads)
        return f"torch {torch.__version__}"

    def _forward(self, model):
        import torch
        return torch.compile(model) if self.compiled else model

    def _autocast(self):
        """The context the forward pass and the loss run in."""
        return contextlib.nullcontext()

    def _sgd(self, params, X, y, batch, dtype):
        """run(n): epochs of plain SGD from numpy `params` over the numpy rows X
        (labels y), batches of `batch`, the last one ragged if n is not a
        multiple; also returns the model."""
        import torch
        dt = self.model_dtype or dtype
        model = _model(params, dt)
        forward = self._forward(model)
        loss_fn = torch.nn.CrossEntropyLoss()
        opt = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
        X, y = torch.from_numpy(X).to(getattr(torch, dt)), torch.from_numpy(y)
        autocast = self._autocast

        def run(n):
            for i in range(0, n, batch):
                opt.zero_grad(set_to_none=True)
                with autocast():
                    loss = loss_fn(forward(X[i:i + batch]), y[i:i + batch])
                loss.backward()  # outside autocast, as its documentation advises
                opt.step()
        return run, model

    def train(self, s):
        if s.case.sparse:
            return self._train_sparse(s)
        return self._sgd(s.params, s.data.X, s.data.y, s.case.batch, s.dtype)[0]

    def _train_sparse(self, s):
        """The first layer as torch.sparse.mm(batch, W0) + b0 on the batch's
        sparse rows (COO tensors made before timing, as torch.from_numpy is for
        dense data), the rest nn.Sequential; CrossEntropyLoss and the case's
        optimizer (Adam)."""
        import torch
        from torch import nn
        if self.compiled:
            raise NotImplementedError("torch.compile of torch.sparse.mm is not timed")
        dt = getattr(torch, s.dtype)
        (W0, b0), rest = s.params[0], s.params[1:]
        w0 = nn.Parameter(torch.from_numpy(W0.copy()))
        c0 = nn.Parameter(torch.from_numpy(b0.copy()))
        mods = []
        for i, (W, b) in enumerate(rest):
            lin = nn.Linear(*W.shape, dtype=dt)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(W.T.copy()))
                lin.bias.copy_(torch.from_numpy(b))
            mods += [nn.ReLU(), lin]
        tail = nn.Sequential(*mods)
        loss_fn = torch.nn.CrossEntropyLoss()
        params = [w0, c0, *tail.parameters()]
        opt = (torch.optim.Adam(params, lr=LEARNING_RATE) if s.case.solver == "adam"
               else torch.optim.SGD(params, lr=LEARNING_RATE))
        b, X = s.case.batch, s.data.X
        batches = []
        for i in range(0, X.shape[0], b):
            coo = X[i:i + b].tocoo()
            idx = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
            batches.append(torch.sparse_coo_tensor(idx, torch.from_numpy(coo.data), coo.shape,
                                                   check_invariants=False).coalesce())
        y = torch.from_numpy(s.data.y)

        def run(n):
            for k, i in enumerate(range(0, n, b)):
                opt.zero_grad(set_to_none=True)
                z = torch.sparse.mm(batches[k], w0) + c0
                loss_fn(tail(z), y[i:i + b]).backward()
                opt.step()
        return run

    def predict(self, s):
        import torch
        dt = self.model_dtype or s.dtype
        forward = self._forward(_model(s.params, dt))
        X = torch.from_numpy(s.data.X).to(getattr(torch, dt))
        autocast = self._autocast

        def predict():
            with torch.inference_mode(), autocast():
                return torch.softmax(forward(X), dim=1)
        return predict

    def _one_epoch(self, case, params, X, y, dtype, threads):
        """check_result of the bfloat16 peers: the weights after one epoch of SGD
        (or the probabilities), as float64 numpy arrays in the reference's layout."""
        import torch
        if case.sparse:
            raise NotImplementedError("sparse input is not timed in the bfloat16 run")
        if case.predict:
            s = Setup(case, Data(X, y, None), params, dtype, threads)
            return [self.predict(s)().double().numpy()]
        run, model = self._sgd(params, X, y, max(case.batch, 1), dtype)
        run(X.shape[0])
        lins = [m for m in model if isinstance(m, torch.nn.Linear)]
        return [a.detach().double().numpy() for lin in lins for a in (lin.weight.T, lin.bias)]


class TorchCompile(Torch):
    compiled = True  # the model wrapped in torch.compile (default mode)


class TorchAutocast(Torch):
    """float32 weights, data and SGD; the forward pass and the loss under
    torch.autocast("cpu", dtype=torch.bfloat16): each Linear casts its input,
    weight and bias to bfloat16 and returns bfloat16 (so ReLU runs on bfloat16),
    the loss is computed in float32; the backward pass follows the dtypes the
    forward pass used, and the weight gradients come back float32 for SGD."""
    model_dtype = "float32"
    # Its activations and gradients are rounded to bfloat16 too, which moves the
    # weights about as much again as the operands' rounding (0.6-1.2 of it on
    # the cases here): a looser tolerance, and a note rather than an abort when
    # it is exceeded (see reference.check)
    check_rtol = {"bfloat16": 3.0}
    check_enforced = False
    check_result = Torch._one_epoch

    def _autocast(self):
        import torch
        return torch.autocast("cpu", dtype=torch.bfloat16)

    def train(self, s):
        if s.case.sparse:
            raise NotImplementedError("sparse input is not timed in the bfloat16 run")
        return super().train(s)


class TorchBf16(TorchAutocast):
    """Model and data converted to torch.bfloat16 (untimed), plain SGD on the
    bfloat16 weights: every value and every update is rounded to bfloat16."""
    model_dtype = "bfloat16"
    # bfloat16 weights alone are off by up to 2^-9 of their size, 150-350 times
    # what the operands' rounding moves in the check's epoch: reported only
    check_rtol = {"bfloat16": 1000.0}

    def _autocast(self):
        return contextlib.nullcontext()
