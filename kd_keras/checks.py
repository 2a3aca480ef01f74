"""Checks of the data given to `fit`, made before any training.

Keras finds most of these problems too, but deep inside the compiled step,
with a message naming neither the argument nor the fix. Numpy arrays
(tensors converted with `as_numpy`) are checked here; datasets are checked
for emptiness only.
"""

import keras
import numpy as np
import tensorflow as tf

from kd_keras.labels import UNLABELLED


def _input_shapes(model):
    inputs = getattr(model, "inputs", None)
    return [tuple(i.shape[1:]) for i in inputs] if inputs else None


def _compatible(a, b):
    return len(a) == len(b) and all(
        i is None or j is None or i == j for i, j in zip(a, b, strict=True)
    )


def check_inputs_match(teacher, student):
    """Raises a `ValueError` if teacher and student take different inputs.

    Both see the same `x`, so their input shapes must agree (an unknown
    dimension agrees with any).
    """
    teacher_shapes, student_shapes = (
        _input_shapes(teacher),
        _input_shapes(student),
    )
    if teacher_shapes is None or student_shapes is None:
        return
    if len(teacher_shapes) != len(student_shapes) or not all(
        _compatible(t, s)
        for t, s in zip(teacher_shapes, student_shapes, strict=True)
    ):
        raise ValueError(
            "teacher and student must take the same inputs: both are "
            f"called on x. Received: teacher inputs {teacher_shapes}, "
            f"student inputs {student_shapes}."
        )


def as_numpy(value):
    """`value` as a numpy array if it is a dense tensor, else unchanged."""
    return value.numpy() if isinstance(value, tf.Tensor) else value


def _leaves(value):
    leaves = keras.tree.flatten(value)
    if not all(isinstance(leaf, np.ndarray) for leaf in leaves):
        return None
    return leaves


def check_not_empty(name, value):
    """Raises a `ValueError` if the arrays or dataset `value` hold nothing."""
    if isinstance(value, tf.data.Dataset):
        if int(value.cardinality()) == 0:
            raise ValueError(
                f"{name} is an empty tf.data.Dataset (no batches): there "
                "is nothing to train on."
            )
        return
    leaves = _leaves(value)
    if leaves and len(leaves[0]) == 0:
        raise ValueError(
            f"{name} is empty (0 samples): there is nothing to train on. "
            f"Received: {name} of shape {tuple(leaves[0].shape)}"
        )


def check_x(model, x):
    """Raises a `ValueError` if the arrays `x` do not fit `model`'s inputs."""
    expected = _input_shapes(model)
    leaves = _leaves(x)
    if expected is None or leaves is None or len(leaves) != len(expected):
        return
    for leaf, shape in zip(leaves, expected, strict=True):
        if not _compatible(tuple(leaf.shape[1:]), shape):
            raise ValueError(
                f"x has samples of shape {tuple(leaf.shape[1:])}, but the "
                f"models take inputs of shape {shape}."
            )


def check_y(name, y, output_shape):
    """Raises if the label array `y` does not fit a classifier's outputs.

    Labels are class indices in `[0, classes)` or `UNLABELLED` (shape
    `(samples,)` or `(samples, 1)`), or one-hot rows as wide as the outputs.

    Args:
        name: The argument's name, for the message.
        y: The labels, a numpy array (anything else is not checked).
        output_shape: The models' output shape without the batch axis.
    """
    if not isinstance(y, np.ndarray) or output_shape is None:
        return
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise TypeError(
            f"{name} must hold numbers (class indices or one-hot rows). "
            f"Received: {name} of dtype {y.dtype}"
        )
    classes = output_shape[-1]
    if classes < 2 or y.ndim != 1 + len(output_shape):
        # Regression targets, and integer labels `(samples,)` or
        # `(samples, 1)`, are checked below or by the loss.
        one_hot = False
    else:
        one_hot = y.shape[-1] != 1
    if one_hot and y.shape[-1] != classes:
        raise ValueError(
            f"{name} has shape {y.shape}: one-hot labels need {classes} "
            "columns, one per class of the models' outputs, and integer "
            f"labels one column. Received: {name}.shape={y.shape}"
        )
    if classes < 2 or one_hot or y.size == 0:
        return
    # NaN and Inf are left to `finite.check_array`.
    finite = y[np.isfinite(y)]
    fractional = finite[np.mod(finite, 1) != 0]
    if fractional.size:
        raise ValueError(
            f"{name} holds class indices that are not whole numbers (e.g. "
            f"{fractional[:3].tolist()}); sparse labels are cast to "
            "integers, which would silently truncate them. Pass integer "
            f"labels or one-hot rows of {classes} columns."
        )
    known = finite[finite != UNLABELLED]
    if known.size and (known.min() < 0 or known.max() >= classes):
        raise ValueError(
            f"Labels must be in [0, {classes}) for a model with {classes} "
            f"classes, or {UNLABELLED} for an unlabelled sample. Received "
            f"{name} from {finite.min()} to {finite.max()}."
        )
