"""Distillation on several workers with `MultiWorkerMirroredStrategy`.

Keras 3's `fit` fails under a multi-worker `MultiWorkerMirroredStrategy`
(https://github.com/keras-team/keras/issues/20585) at two places:

- before training, it averages a batch across the workers with
  `strategy.reduce` to learn the inputs' shapes, and that eager reduction
  of a distributed batch raises a `ValueError`;
- after each step, it reduces the logs with
  `strategy.reduce("MEAN", log, axis=0)`, which fails on the scalar logs
  ("Invalid reduction dimension 0 for input with 0 dimensions").

The step itself is sound: the optimizer sums the gradients over all the
replicas with the strategy's collectives. The functions here build the step
function with the logs averaged over the replicas by `strategy.reduce`
without an axis (as Keras does for a single-worker `MirroredStrategy`), and
read the shapes from a local batch, so that `fit` and `evaluate` run
unchanged on every worker. `BackupAndRestore` backs training up so that a
restarted job resumes where all workers left off.
"""

import json
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from kd_keras import compat
from kd_keras.teacher_outputs import TeacherStore
from kd_keras.teacher_outputs import cache as teacher_cache


def is_multi_worker(strategy):
    """Whether `strategy` is a `MultiWorkerMirroredStrategy` on >1 worker."""
    return isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy
    ) and compat.in_multi_worker_mode(strategy)


def local_batch(strategy, batch):
    """The first local replica's part of a distributed batch."""
    return keras.tree.map_structure(
        lambda v: strategy.experimental_local_results(v)[0], batch
    )


def check_shuffle(strategy, x, shuffle):
    """Raises unless all workers shuffle in-memory `x` (or a `TeacherStore`)
    the same way.

    Each worker shuffles its copy of the arrays (or the list of a store's
    shards) before the strategy splits the data between the workers;
    unseeded, each worker draws its own order and some samples are seen
    twice per epoch, others never.
    """
    if (
        shuffle
        and is_multi_worker(strategy)
        and (teacher_cache.is_in_memory(x) or isinstance(x, TeacherStore))
        and tf.compat.v1.random.get_seed(None)[0] is None
    ):
        raise ValueError(
            "Under a multi-worker MultiWorkerMirroredStrategy every worker "
            "must shuffle the data in the same order: call "
            "keras.utils.set_random_seed(seed) with the same seed on every "
            f"worker, or pass shuffle=False. Received: shuffle={shuffle!r} "
            "without a global seed."
        )


def _on_cpu(strategy):
    return any(
        tf.DeviceSpec.from_string(device).device_type == "CPU"
        for device in strategy.extended.worker_devices
    )


def make_step_function(model, step):
    """A `fit`/`evaluate` step function of `model` running `step`.

    Runs up to `steps_per_execution` steps of `step` on every replica per
    call, each a compiled function, and returns the logs of the last one,
    averaged over the replicas (metrics are local to each replica until
    read outside the step). The step is compiled with XLA when
    `model.jit_compile`, except on CPU workers: XLA compiles cross-worker
    collectives only for GPUs and TPUs.

    Args:
        model: The `keras.Model`, built under a multi-worker strategy.
        step: `model.train_step` or `model.test_step`.

    Returns:
        A function of a distributed iterator, as Keras' trainer calls it.
    """
    strategy = model.distribute_strategy

    def one_step(data):
        logs = strategy.run(step, args=(data,))
        return keras.tree.map_structure(
            lambda v: strategy.reduce("MEAN", v, axis=None), logs
        )

    def next_step(iterator):
        return one_step(iterator.get_next())

    if not model.run_eagerly:
        # As in Keras: the batch is fetched in the graph, outside XLA.
        one_step = tf.function(
            one_step,
            reduce_retracing=True,
            jit_compile=model.jit_compile and not _on_cpu(strategy),
        )
        next_step = tf.function(next_step, reduce_retracing=True)

    def function(iterator):
        # The first step's end of data ends the epoch (Keras' trainer
        # catches it); a later one only ends this execution early. The
        # workers agree on the end of the data, so all stop at one step.
        outputs = next_step(iterator)
        for _ in range(model.steps_per_execution - 1):
            try:
                outputs = next_step(iterator)
            except tf.errors.OutOfRangeError:
                break
        return outputs

    return function


class MultiWorkerSteps(compat.BuildFromBatch):
    """Mixin of a `keras.Model` whose `fit` works on several workers.

    Under a multi-worker `MultiWorkerMirroredStrategy` the step functions
    come from `make_step_function` and the model is built from a local
    batch; under any other strategy Keras' own functions run.
    """

    def _multi_worker_function(self, kind, step, force):
        """`self.<kind>_function` for several workers; `None` otherwise."""
        if not is_multi_worker(self.distribute_strategy):
            return None
        attribute = f"{kind}_function"
        if getattr(self, attribute) is None or force:
            setattr(self, attribute, make_step_function(self, step))
        return getattr(self, attribute)

    def make_train_function(self, force=False):
        return self._multi_worker_function(
            "train", self.train_step, force
        ) or super().make_train_function(force)

    def make_test_function(self, force=False):
        return self._multi_worker_function(
            "test", self.test_step, force
        ) or super().make_test_function(force)

    def build_batch(self, iterator):
        """A local batch to build from, on several workers."""
        strategy = self.distribute_strategy
        if not is_multi_worker(strategy):
            return None
        for _, _, batches in iterator:
            return local_batch(strategy, next(batches))
        return None


class BackupAndRestore(keras.callbacks.Callback):
    """Backs up training at each epoch's end and resumes from the backup.

    Like `keras.callbacks.BackupAndRestore` (epoch frequency), and also
    correct on several workers, where Keras' callback has every worker
    write the same files. Here only the chief (the strategy's
    `should_checkpoint`) writes the backup, and every worker restores from
    it: the directory must be shared by the workers, so all resume at the
    same epoch with the same weights. Each backup is written under a new
    name then published by an atomic rename of a small JSON index, so a
    worker killed while writing leaves the previous backup whole.

    The backup holds the model's weights (teacher, student, adapters) and
    the optimizer's state; training resumes at the epoch after the last
    backup. With the same data order (`shuffle=False`, or seeded shuffles)
    and `tf.config.experimental.enable_op_determinism()`, the resumed run
    ends with the student of an uninterrupted run.

    Args:
        backup_dir: Directory of the backup, shared by all workers.
        delete_checkpoint: Whether to delete the backup when training ends.
            Defaults to `True`.

    Example:

    ```python
    with tf.distribute.MultiWorkerMirroredStrategy().scope():
        distiller = kd_keras.Distiller(teacher, student)
        distiller.compile(optimizer="adam")
    backup = kd_keras.distribute.BackupAndRestore("/shared/backup")
    distiller.fit(x, y, epochs=10, callbacks=[backup])
    ```
    """

    _INDEX = "backup.json"

    def __init__(self, backup_dir, delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise ValueError(
                f"backup_dir must be a directory. Received: "
                f"backup_dir={backup_dir!r}"
            )
        self.backup_dir = os.fspath(backup_dir)
        self.delete_checkpoint = delete_checkpoint

    def _path(self, name):
        return os.path.join(self.backup_dir, name)

    def on_train_begin(self, logs=None):
        try:
            with open(self._path(self._INDEX)) as f:
                index = json.load(f)
        except FileNotFoundError:
            return
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        self.model.load_weights(self._path(index["weights"]))
        compat.set_initial_epoch(self.model, index["epoch"])

    def on_epoch_end(self, epoch, logs=None):
        weights = f"epoch_{epoch + 1}.weights.h5"
        if not self.model.distribute_strategy.extended.should_checkpoint:
            # Saving reads the metrics' variables, which are reduced across
            # the workers: every worker saves, the others to a scratch copy.
            with tempfile.TemporaryDirectory() as scratch:
                self.model.save_weights(os.path.join(scratch, weights))
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        self.model.save_weights(self._path(weights), overwrite=True)
        with open(self._path(self._INDEX + ".tmp"), "w") as f:
            json.dump({"epoch": epoch + 1, "weights": weights}, f)
        os.replace(self._path(self._INDEX + ".tmp"), self._path(self._INDEX))
        for name in os.listdir(self.backup_dir):
            if name.endswith(".weights.h5") and name != weights:
                os.remove(self._path(name))

    def on_train_end(self, logs=None):
        chief = self.model.distribute_strategy.extended.should_checkpoint
        if self.delete_checkpoint and chief:
            shutil.rmtree(self.backup_dir, ignore_errors=True)
