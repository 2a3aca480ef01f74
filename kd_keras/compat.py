"""The private parts of Keras and TensorFlow that kd_keras relies on.

Every use of a private name is here, each with why no public API does the
job. `tests/test_compat.py` fails with a message naming the function to
update when an upgrade changes one of them.
"""

import keras
import tensorflow as tf


def producing_layer(tensor):
    """The layer (or operation) whose call produced the symbolic `tensor`.

    Reads `KerasTensor._keras_history`: Keras exposes a model's layers, not
    which one produced its output.
    """
    return tensor._keras_history.operation


def layer_inputs(tensor):
    """The symbolic tensors passed to the call that produced `tensor`.

    Reads the inbound node of `_keras_history`: a layer used twice has two
    inputs, and only the node says which call produced `tensor`.
    """
    history = tensor._keras_history
    node = history.operation._inbound_nodes[history.node_index]
    return list(node.input_tensors)


def has_graph(model):
    """Whether `model` is functional or Sequential: a graph of layers.

    `keras.Model(inputs, outputs)` builds a `Functional`, a class Keras
    does not export, so it is recognised by its name.
    """
    return isinstance(model, keras.Sequential) or any(
        cls.__name__ == "Functional" for cls in type(model).__mro__
    )


def loss_tracker(model):
    """The `keras.metrics.Mean` behind the `loss` of `model`'s logs.

    Keras' `Model._loss_tracker`, created by `compile`: a trainer that
    computes its own loss updates it so that `loss` comes first in the logs,
    as for any Keras model.
    """
    return model._loss_tracker


def compiled_metrics(model):
    """The container of `model`'s compiled metrics, or `None`.

    Keras' `Model._compile_metrics`: it is built from the first batch's
    labels, and stays unbuilt when training has no labels.
    """
    return model._compile_metrics


def build_from_batch(model, batch):
    """Creates `model`'s state (layers, compiled metrics, optimizer) from
    the shapes of `batch`, `(x, y, sample_weight)` of arrays or
    `tf.TensorSpec`s, under its strategy's scope.

    Keras' `fit` does this itself (the private `Trainer._symbolic_build`)
    only under a distribution strategy; otherwise the variables are created
    while the step is traced, and `tf.function` then traces it a second
    time.
    """
    with model.distribute_strategy.scope():
        model._symbolic_build(data_batch=batch)


def update_compiled_metrics(model, y, y_pred, unweighted, weighted):
    """Updates `model`'s compiled metrics with separate sample weights.

    Keras' `CompileMetrics.update_state` passes no weights to `metrics` and
    the sample weights to `weighted_metrics`. Leaving samples out of both
    (unlabelled samples) needs a weight for each: `unweighted` (a 0/1
    mask) for `metrics`, `weighted` for `weighted_metrics`, the same for
    every output. Reads the private `_flat_metrics`,
    `_flat_weighted_metrics` (one entry per output) and `_flatten_y` (the
    outputs in that order).
    """
    metrics = compiled_metrics(model)
    if metrics is None:
        return
    if not metrics.built:
        metrics.build(y, y_pred)
    labels, outputs = metrics._flatten_y(y), metrics._flatten_y(y_pred)
    for group, weights in (
        (metrics._flat_metrics, unweighted),
        (metrics._flat_weighted_metrics, weighted),
    ):
        for metric, labels_i, outputs_i in zip(
            group, labels, outputs, strict=True
        ):
            if metric is not None:
                metric.update_state(labels_i, outputs_i, sample_weight=weights)


def set_initial_epoch(model, epoch):
    """Makes `model`'s running `fit` start at `epoch`.

    As `keras.callbacks.BackupAndRestore` does, through the private
    `Model._initial_epoch` that `fit` reads after `on_train_begin`.
    """
    model._initial_epoch = epoch


def in_multi_worker_mode(strategy):
    """Whether a `MultiWorkerMirroredStrategy` spans several workers.

    TensorFlow's `extended._in_multi_worker_mode()`; the cluster resolver
    would say it too, but only for the resolvers that know the task count.
    """
    return strategy.extended._in_multi_worker_mode()


def supports_no_merge_call():
    """Whether the current strategy applies gradients without `merge_call`.

    `tf.__internal__`, as `keras.optimizers.LossScaleOptimizer` reads it to
    decide where a conditional update may be taken.
    """
    return tf.__internal__.distribute.strategy_supports_no_merge_call()


_SKIPSET_TYPES = (
    "Operation",
    "Layer",
    "Functional",
    "Sequential",
    "Metric",
    "Optimizer",
    "Loss",
)


def cache_saving_skipsets():
    """Works around Keras caching its saving skip-sets under a wrong name.

    Keras (3.15, `keras.src.saving.saving_lib.get_attr_skipset`) stores each
    set under `saving_attr_skipset_<type>` but looks for
    `saving_attr_skiplist_<type>`, so every save builds reference objects
    again, among them an `Optimizer` with its variables: resident memory
    then grows by about 70 KiB per save of a compiled model (a
    `BackupAndRestore` backup). Stores the sets under the name Keras reads.
    """
    try:
        from keras.src.backend.common import global_state
        from keras.src.saving.saving_lib import get_attr_skipset
    except ImportError:
        return
    for obj_type in _SKIPSET_TYPES:
        key = f"saving_attr_skiplist_{obj_type}"
        if global_state.get_global_attribute(key) is None:
            global_state.set_global_attribute(key, get_attr_skipset(obj_type))


class BuildFromBatch:
    """Mixin of a `keras.Model` that may build itself from a batch of its own.

    Before training under a strategy, Keras' private
    `Model._maybe_symbolic_build` builds the model from a batch it reduces
    across replicas, which fails on several workers. A model returning a
    batch from `build_batch(iterator)` is built from that batch instead;
    `None` keeps Keras' way.
    """

    def build_batch(self, iterator):
        """The batch to build from, or `None` for Keras' own build."""
        return None

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        batch = None if iterator is None else self.build_batch(iterator)
        if batch is None:
            return super()._maybe_symbolic_build(iterator, data_batch)
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=batch)


class SavingCheckpoint(keras.callbacks.ModelCheckpoint):
    """`keras.callbacks.ModelCheckpoint` whose writing a subclass replaces.

    `ModelCheckpoint` decides when to save (`monitor`, `save_best_only`,
    `save_freq`, placeholders in the path) and then saves the whole model,
    in the private `_save_model`. A subclass implementing `write(filepath)`
    keeps the decision and writes what it wants.
    """

    def write(self, filepath, epoch):
        """Writes the checkpoint of `epoch` (from 0) to `filepath`."""
        raise NotImplementedError

    def _save_model(self, epoch, batch, logs):
        filepath = self._get_file_path(epoch, batch, logs)
        if self._should_save_model(epoch, batch, logs, filepath):
            self.write(filepath, epoch)
