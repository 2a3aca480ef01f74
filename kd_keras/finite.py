"""NaN and Inf: refused in the data, and never written into the student.

Before training, `Distiller.fit` checks in-memory inputs, labels and sample
weights once (`check_array`), each batch of a dataset whose teacher outputs
it caches before the teacher sees it (`check_batch`), and the cached
outputs (`check_teacher_outputs`). During training, each step applies its
update only when its loss and, unless all of `fit`'s data was checked
before training, its batch (inputs, labels, sample weights) are finite
(`Guard`); `StopOnNonFinite` then stops `fit` with a `ValueError` naming
the cause, and the student keeps its weights from before the bad batch.

The batch is checked itself, not only through the loss: a compiled forward
pass may turn NaN inputs into finite outputs (oneDNN's fused matmul and
ReLU do on some CPUs, as does any layer that clips or imputes its input).
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from kd_keras import compat

# What a skipped step found non-finite; `Guard.cause` holds 1 + the index.
CAUSES = ("inputs", "labels", "sample weights", "loss")
_BATCH_NAMES = ("x", "y", "sample_weight")


def _first_bad_sample(array):
    """Index of the first sample (row) of `array` holding NaN or Inf."""
    bad = ~np.isfinite(array.reshape(len(array), -1)).all(axis=-1)
    return int(np.argmax(bad)), int(bad.sum())


def check_array(name, value, where=""):
    """Raises a `ValueError` naming `name` if `value` holds NaN or Inf.

    Only floating-point numpy arrays (or structures of them) are read;
    anything else (datasets, generators) is left to `check_batch` or the
    step's own check.

    Args:
        name: The argument's name, for the message.
        value: The array or structure of arrays.
        where: Where the samples come from, e.g. `" of batch 3"`. Defaults
            to `""`.
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
            f"{name} holds NaN or Inf in {count} of {len(leaf)} samples"
            f"{where} (first: sample {first}: {leaf[first].ravel()[:5]}...). "
            "Remove or impute them before training."
        )


def checked_before_training(data):
    """Whether `check_array` read all of `data` (`(x, y, sample_weight)`):
    arrays and tensors in memory, not datasets or generators."""
    return all(
        leaf is None or isinstance(leaf, (np.ndarray, tf.Tensor))
        for leaf in keras.tree.flatten(data)
    )


def check_batch(name, step, element):
    """Raises a `ValueError` if batch `step` of dataset `name` is not finite.

    Args:
        name: The dataset's argument name (`"x"`, `"validation_data"`).
        step: The batch's number, from 1.
        element: The batch, `x`, `(x, y)` or `(x, y, sample_weight)`.
    """
    parts = keras.utils.unpack_x_y_sample_weight(element)
    for part_name, part in zip(_BATCH_NAMES, parts, strict=True):
        check_array(
            part_name if name == "x" else f"{name} ({part_name})",
            keras.tree.map_structure(ops.convert_to_numpy, part),
            where=f" of batch {step}",
        )


def check_teacher_outputs(stored, dtype="float32"):
    """Raises a `ValueError` if the teacher's cached outputs are not finite.

    The inputs were checked before the teacher saw them, so the teacher (or
    the storage) is to blame.

    Args:
        stored: Dict of numpy arrays of all samples, as `TeacherCache.encode`
            returns them.
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
        else:
            cause = (
                "The inputs are finite, so the teacher is broken (NaN "
                "weights, or an overflow: check it with teacher.predict)."
            )
        raise ValueError(
            f"The teacher's outputs ({key}) are NaN or Inf for {count} of "
            f"{len(array)} samples (first: sample {first}). {cause}"
        )


def _is_float(tensor):
    return tensor is not None and "float" in keras.backend.standardize_dtype(
        tensor.dtype
    )


def zero_non_finite(labels):
    """`labels` with NaN and Inf replaced by 0, for a step `Guard` skips.

    Sparse labels are cast to integers, and a NaN label would make the
    cross-entropy fail deep inside the step instead of being reported.
    """
    return keras.tree.map_structure(
        lambda t: ops.where(ops.isfinite(t), t, 0) if _is_float(t) else t,
        labels,
    )


def _is_finite(structure):
    """Whether the floating-point tensors of `structure` are all finite.

    One reduction per tensor; integer tensors are finite by construction.
    """
    flags = [
        ops.all(ops.isfinite(leaf))
        for leaf in keras.tree.flatten(structure)
        if _is_float(leaf)
    ]
    if not flags:
        return ops.convert_to_tensor(True)
    return flags[0] if len(flags) == 1 else ops.all(ops.stack(flags))


def _fault(x, y, sample_weight, loss):
    """`0` if all are finite, else 1 + the index in `CAUSES` of the first.

    Under a `tf.distribute` strategy the replicas agree: any replica's
    non-finite part counts for all of them.
    """
    bad = ops.cast(
        ops.logical_not(
            ops.stack([_is_finite(p) for p in (x, y, sample_weight, loss)])
        ),
        "float32",
    )
    if tf.distribute.get_strategy().num_replicas_in_sync > 1:
        bad = tf.distribute.get_replica_context().all_reduce("sum", bad)
    return ops.where(
        ops.any(bad > 0), ops.cast(ops.argmax(bad, axis=0), "int32") + 1, 0
    )


class Guard:
    """Applies a training step's update only when its batch is finite.

    A step is skipped when its inputs, labels, sample weights or loss hold
    NaN or Inf; it then leaves the variables and the optimizer's state (its
    `iterations` too) as they were. `cause` keeps the first skip's cause
    (1 + its index in `CAUSES`) for `StopOnNonFinite`; it is not saved with
    the model. Create it where the model is created (under its
    `tf.distribute` strategy's scope).

    When `data_checked` is true (`fit`'s data was checked whole before
    training, `checked_before_training`), a step checks its loss only:
    reading every input again costs as much as the student's step on a
    small model. It is read when the step is traced.
    """

    data_checked = False

    def __init__(self):
        self.cause = keras.Variable(
            0,
            dtype="int32",
            trainable=False,
            aggregation="only_first_replica",
            name="non_finite_cause",
        )

    def apply(self, optimizer, batch, loss, gradients, variables):
        """Applies `gradients` to `variables` if `batch` and `loss` are finite.

        Args:
            optimizer: The optimizer.
            batch: `(x, y, sample_weight)` of the step.
            loss: The step's loss.
            gradients: One gradient per variable.
            variables: The variables to update.

        Returns:
            The loss to report: `loss`, or NaN if the update was skipped (so
            that the logs show the skip even when the loss was finite).
        """
        if not optimizer.built:
            optimizer.build(variables)
        fault = _fault(*((None,) * 3 if self.data_checked else batch), loss)
        self.cause.assign(ops.where(self.cause == 0, fault, self.cause))
        _apply_if(fault == 0, optimizer, gradients, variables)
        return ops.where(fault == 0, loss, np.nan)


def _apply_if(finite, optimizer, gradients, variables):
    """Applies `gradients` if `finite`, the same on every replica."""

    def apply(gradients):
        optimizer.apply_gradients(zip(gradients, variables, strict=True))

    if compat.supports_no_merge_call():
        ops.cond(finite, lambda: apply(gradients), lambda: None)
        return

    # As `keras.optimizers.LossScaleOptimizer` does: a branch that calls
    # `merge_call` (as `apply_gradients` does) must be taken in a
    # cross-replica context.
    def cross_replica(strategy, finite, gradients):
        def apply_everywhere():
            strategy.extended.call_for_each_replica(apply, args=(gradients,))

        ops.cond(
            strategy.experimental_local_results(finite)[0],
            apply_everywhere,
            lambda: None,
        )

    tf.distribute.get_replica_context().merge_call(
        cross_replica, args=(finite, gradients)
    )


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops `fit` with a `ValueError` once a step was skipped.

    Unlike `keras.callbacks.TerminateOnNaN`, the student is not left with
    NaN weights: `Guard` skipped the bad batch's update, so it keeps the
    weights it had before that batch. The message names what was not
    finite: the batch's inputs, labels, sample weights, or the loss.
    `Distiller.fit` adds this callback itself.

    Args:
        guard: The `Guard` of the model's training step.
    """

    def __init__(self, guard):
        super().__init__()
        self.guard = guard
        self._epoch = 0

    def on_train_begin(self, logs=None):
        self.guard.cause.assign(0)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or np.isfinite(float(loss)):
            return
        self.model.stop_training = True
        cause = int(self.guard.cause.numpy())
        where = f"epoch {self._epoch + 1}, batch {batch + 1}"
        if 0 < cause < len(CAUSES):
            problem = (
                f"the {CAUSES[cause - 1]} of that batch hold NaN or Inf. "
                "Remove or impute them before training."
            )
        else:
            problem = (
                "the loss is not finite. The teacher's outputs on that batch "
                "hold NaN or Inf, or training diverged (lower the learning "
                "rate or the temperature)."
            )
        raise ValueError(
            f"Training stopped at {where}: {problem} The update of that "
            "batch was skipped: the student keeps its weights from before it."
        )
