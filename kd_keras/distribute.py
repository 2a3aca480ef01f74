"""Training steps for `tf.distribute.MultiWorkerMirroredStrategy`.

Keras 3's `fit` fails under a multi-worker `MultiWorkerMirroredStrategy`
(https://github.com/keras-team/keras/issues/20585) at two places:

- before training, it averages a batch across the workers with
  `strategy.reduce` to learn the inputs' shapes, and that eager reduction
  of a distributed batch raises a `ValueError`;
- after each step, it reduces the logs with
  `strategy.reduce("MEAN", log, axis=0)`, which fails on the scalar logs
  ("Invalid reduction dimension 0 for input with 0 dimensions").

The step itself is sound: the optimizer sums the gradients over all the
replicas with the strategy's collectives, and metric variables, mirrored
with `SUM` aggregation, are synchronised on every update, so every replica
holds the same global metrics. The functions here build the step function
with the logs read from the first local replica (no reduction needed) and
read the shapes from a local batch, so that `fit` and `evaluate` run
unchanged on every worker.
"""

import keras
import tensorflow as tf


def is_multi_worker(strategy):
    """Whether `strategy` is a `MultiWorkerMirroredStrategy` on >1 worker."""
    return isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy
    ) and strategy.extended._in_multi_worker_mode()


def local_values(strategy, values):
    """`values` with each distributed value replaced by its first replica's.

    Every replica holds the same logs and the same batch shapes, so the
    first local value stands for all of them without a collective.
    """
    return keras.tree.map_structure(
        lambda v: strategy.experimental_local_results(v)[0], values
    )


def make_step_function(model, step):
    """A `fit`/`evaluate` step function of `model` running `step`.

    Runs `steps_per_execution` steps of `step` on every replica per call,
    each a compiled function (XLA when `model.jit_compile`), and returns
    the logs of the last one.

    Args:
        model: The `keras.Model`, built under a multi-worker strategy.
        step: `model.train_step` or `model.test_step`.

    Returns:
        A function of a distributed iterator, as Keras' trainer calls it.
    """
    strategy = model.distribute_strategy

    def one_step(data):
        return local_values(strategy, strategy.run(step, args=(data,)))

    if not model.run_eagerly:
        one_step = tf.function(
            one_step, reduce_retracing=True, jit_compile=model.jit_compile
        )

    def function(iterator):
        for _ in range(model.steps_per_execution):
            outputs = one_step(next(iterator))
        return outputs

    return function


class MultiWorkerSteps:
    """Mixin of a `keras.Model` whose `fit` works on several workers.

    Under a multi-worker `MultiWorkerMirroredStrategy` the step functions
    come from `make_step_function` and the model is built from a local
    batch; under any other strategy Keras' own functions run.
    """

    def make_train_function(self, force=False):
        if not is_multi_worker(self.distribute_strategy):
            return super().make_train_function(force)
        if self.train_function is None or force:
            self.train_function = make_step_function(self, self.train_step)
        return self.train_function

    def make_test_function(self, force=False):
        if not is_multi_worker(self.distribute_strategy):
            return super().make_test_function(force)
        if self.test_function is None or force:
            self.test_function = make_step_function(self, self.test_step)
        return self.test_function

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self.distribute_strategy
        if iterator is None or not is_multi_worker(strategy):
            return super()._maybe_symbolic_build(iterator, data_batch)
        for _, _, batches in iterator:
            data_batch = local_values(strategy, next(batches))
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)
