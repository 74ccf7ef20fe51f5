"""numpy: the reference trainer's hand-written forward/backward/update loop."""
import numpy as np

from cases import LEARNING_RATE
from peers import Peer
from reference import copy_params, numpy_epoch, numpy_forward


def _blas_description():
    try:
        from threadpoolctl import threadpool_info
        blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if blas:
            i = blas[0]
            return (f" ({i.get('internal_api')} {i.get('version')}, {i.get('num_threads')} "
                    f"thread(s), {i.get('architecture')})")
    except Exception:
        pass
    return ""


class Numpy(Peer):
    def load(self, dtype, threads):
        return f"numpy {np.__version__}{_blas_description()}"

    def train(self, s):
        if s.case.sparse or s.case.solver != "sgd":
            raise NotImplementedError("this peer trains dense input with plain SGD only")
        params = copy_params(s.params)

        def run(n):
            numpy_epoch(params, s.data.X, s.data.Y, s.case.batch, LEARNING_RATE, n)
        return run

    def predict(self, s):
        return lambda: numpy_forward(s.params, s.data.X)
