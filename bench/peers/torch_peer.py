"""PyTorch, eager ("torch") and compiled ("torch.compile"): nn.Sequential of
Linear/ReLU, CrossEntropyLoss and optim.SGD in a Python loop over batches."""
import numpy as np

from cases import LEARNING_RATE
from peers import Peer


def _model(s):
    import torch
    from torch import nn
    mods = []
    for i, (W, b) in enumerate(s.params):
        lin = nn.Linear(*W.shape, dtype=getattr(torch, s.dtype))
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W.T.copy()))
            lin.bias.copy_(torch.from_numpy(b))
        mods.append(lin)
        if i < len(s.params) - 1:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


class Torch(Peer):
    compiled = False

    def load(self, dtype, threads):
        import torch
        torch.set_num_threads(threads)
        return f"torch {torch.__version__}"

    def _forward(self, model):
        import torch
        return torch.compile(model) if self.compiled else model

    def train(self, s):
        if s.case.sparse:
            return self._train_sparse(s)
        import torch
        model = _model(s)
        forward = self._forward(model)
        loss_fn = torch.nn.CrossEntropyLoss()
        opt = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
        X, y, b = torch.from_numpy(s.data.X), torch.from_numpy(s.data.y), s.case.batch

        def run(n):
            for i in range(0, n, b):
                opt.zero_grad(set_to_none=True)
                loss_fn(forward(X[i:i + b]), y[i:i + b]).backward()
                opt.step()
        return run

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
        forward = self._forward(_model(s))
        X = torch.from_numpy(s.data.X)

        def predict():
            with torch.inference_mode():
                return torch.softmax(forward(X), dim=1)
        return predict


class TorchCompile(Torch):
    compiled = True  # the model wrapped in torch.compile (default mode)
