"""PyTorch, eager ("torch") and compiled ("torch.compile"): nn.Sequential of
Linear/ReLU, CrossEntropyLoss and optim.SGD in a Python loop over batches."""
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
