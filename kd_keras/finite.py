"""NaN and Inf: refused in the data, and never written into the student.

Before training, `Distiller.fit` checks in-memory inputs, labels and the
teacher's cached outputs once (`check_array`, `check_teacher_outputs`).
During training, each step applies its update only when its loss is finite
(`apply_if_finite`); `StopOnNonFinite` then stops `fit` with a `ValueError`,
and the student keeps its weights from before the bad batch.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops


def _first_bad_sample(array):
    """Index of the first sample (row) of `array` holding NaN or Inf."""
    bad = ~np.isfinite(array.reshape(len(array), -1)).all(axis=-1)
    return int(np.argmax(bad)), int(bad.sum())


def check_array(name, value):
    """Raises a `ValueError` naming `name` if `value` holds NaN or Inf.

    Only floating-point numpy arrays (or structures of them) are read;
    anything else (datasets, generators) is left to the step's own check.
    """
    for leaf in keras.tree.flatten(value):
        if not isinstance(leaf, np.ndarray) or leaf.ndim == 0:
            continue
        if not np.issubdtype(leaf.dtype, np.floating):
            continue
        if np.isfinite(leaf).all():
            continue
        first, count = _first_bad_sample(leaf)
        raise ValueError(
            f"{name} holds NaN or Inf in {count} of {len(leaf)} samples "
            f"(first: sample {first}: {leaf[first].ravel()[:5]}...). "
            "Remove or impute them before training."
        )


def check_teacher_outputs(stored, inputs_checked, dtype="float32"):
    """Raises a `ValueError` if the teacher's cached outputs are not finite.

    Args:
        stored: Dict of numpy arrays of all samples, as `TeacherCache.encode`
            returns them.
        inputs_checked: Whether the inputs are known to be finite, so that
            the teacher itself is to blame.
        dtype: The storage dtype. Defaults to `"float32"`.
    """
    for key, array in stored.items():
        if not np.issubdtype(array.dtype, np.floating):
            continue
        if np.isfinite(array).all():
            continue
        first, count = _first_bad_sample(array)
        if dtype == "float16":
            cause = (
                "Stored as float16, they overflow above 65504: pass "
                "cache=kd_keras.TeacherCache('float32')."
            )
        elif inputs_checked:
            cause = (
                "The inputs are finite, so the teacher is broken (NaN "
                "weights, or an overflow: check it with teacher.predict)."
            )
        else:
            cause = "Its inputs hold NaN or Inf, or the teacher is broken."
        raise ValueError(
            f"The teacher's outputs ({key}) are NaN or Inf for {count} of "
            f"{len(array)} samples (first: sample {first}). {cause}"
        )


def apply_if_finite(optimizer, loss, gradients, variables):
    """Applies `gradients` unless `loss` is NaN or Inf.

    A skipped step leaves the variables and the optimizer's state (its
    `iterations` too) as they were. Under a `tf.distribute` strategy, the
    replicas agree on skipping: any replica's non-finite loss skips the
    step everywhere.
    """
    if not optimizer.built:
        optimizer.build(variables)
    finite = ops.all(ops.isfinite(loss))

    def apply(gradients):
        optimizer.apply_gradients(zip(gradients, variables, strict=True))

    if tf.__internal__.distribute.strategy_supports_no_merge_call():
        ops.cond(finite, lambda: apply(gradients), lambda: None)
        return
    # As `keras.optimizers.LossScaleOptimizer` does: a branch that calls
    # `merge_call` (as `apply_gradients` does) must be taken in a
    # cross-replica context.
    context = tf.distribute.get_replica_context()
    bad = ops.cast(ops.logical_not(finite), "float32")
    finite = context.all_reduce("sum", bad) == 0

    def cross_replica(strategy, finite, gradients):
        def apply_everywhere():
            strategy.extended.call_for_each_replica(apply, args=(gradients,))

        ops.cond(
            strategy.experimental_local_results(finite)[0],
            apply_everywhere,
            lambda: None,
        )

    context.merge_call(cross_replica, args=(finite, gradients))


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops `fit` with a `ValueError` once the loss is NaN or Inf.

    Unlike `keras.callbacks.TerminateOnNaN`, the student is not left with
    NaN weights: `Distiller.train_step` skipped the bad batch's update, so
    it keeps the weights it had before that batch. `Distiller.fit` adds
    this callback itself.
    """

    def __init__(self):
        super().__init__()
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or np.isfinite(float(loss)):
            return
        self.model.stop_training = True
        raise ValueError(
            f"Training stopped at epoch {self._epoch + 1}, batch {batch + 1}: "
            f"the loss is {float(loss)}. The inputs, labels or teacher "
            "outputs of that batch hold NaN or Inf, or training diverged "
            "(lower the learning rate or the temperature). The update of "
            "that batch was skipped: the student keeps its weights from "
            "before it."
        )
