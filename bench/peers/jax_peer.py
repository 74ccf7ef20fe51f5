"""JAX: a jitted train step (value_and_grad and the SGD update in one function,
parameters donated) called once per batch; a jitted forward pass."""
import numpy as np

from cases import LEARNING_RATE
from peers import Peer


def _logits(params, x):
    import jax
    a = x
    for W, b in params[:-1]:
        a = jax.nn.relu(a @ W + b)
    W, b = params[-1]
    return a @ W + b


def _loss(params, x, y):
    import jax
    import jax.numpy as jnp
    logp = jax.nn.log_softmax(_logits(params, x))
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def _params(s):
    import jax.numpy as jnp
    return [(jnp.asarray(W), jnp.asarray(b)) for W, b in s.params]


class Jax(Peer):
    def load(self, dtype, threads):
        import jax
        import jaxlib
        if dtype == "float64":
            jax.config.update("jax_enable_x64", True)
        jax.devices()
        return f"jax {jax.__version__}, jaxlib {jaxlib.__version__}"

    def train(self, s):
        import jax
        if s.case.sparse or s.case.solver != "sgd":
            raise NotImplementedError("this peer trains dense input with plain SGD only")

        def step(params, x, y):
            loss, grads = jax.value_and_grad(_loss)(params, x, y)
            return jax.tree_util.tree_map(lambda p, g: p - LEARNING_RATE * g, params,
                                          grads), loss

        step = jax.jit(step, donate_argnums=0)
        b = s.case.batch
        # the data set lives on the device already, split into batches (as torch's
        # tensors share numpy's memory, this is not part of the timed work)
        xs = [jax.device_put(s.data.X[i:i + b]) for i in range(0, s.data.X.shape[0], b)]
        ys = [jax.device_put(s.data.y[i:i + b].astype(np.int32))
              for i in range(0, s.data.X.shape[0], b)]
        state = {"params": _params(s)}

        def run(n):
            params = state["params"]
            for k in range(n // b):
                params, _ = step(params, xs[k], ys[k])
            state["params"] = jax.block_until_ready(params)
        return run

    def predict(self, s):
        import jax
        forward = jax.jit(lambda p, x: jax.nn.softmax(_logits(p, x), axis=1))
        params, X = _params(s), jax.device_put(s.data.X)
        return lambda: forward(params, X).block_until_ready()
