"""Checks of the models and data given to a trainer, made before training.

Keras finds most of these problems too, but deep inside the compiled step,
with a message naming neither the argument nor the fix. Each check here
raises a `TypeError` or `ValueError` naming the argument and what it
received. Numpy arrays (tensors converted with `as_numpy`) are checked in
full; datasets for emptiness only (NaN and Inf: `kd_keras.finite`).
"""

import contextlib
import re

import keras
import numpy as np
import tensorflow as tf

from kd_keras.labels import UNLABELLED, is_one_hot
from kd_keras.views import output_activation, output_shape, single_output

# --- Models -------------------------------------------------------------


def compatible_shapes(a, b):
    """Whether two shapes agree on every axis where both are known."""
    return len(a) == len(b) and all(
        i is None or j is None or i == j for i, j in zip(a, b, strict=True)
    )


class NotAModelError(TypeError, ValueError):
    """A model argument that is not a `keras.Model`: a `TypeError`, and
    the `ValueError` that `keras.distillation` raises for it."""


def check_model(name, model):
    """Raises a `NotAModelError` naming `name` unless `model` is a Keras
    model."""
    if not isinstance(model, keras.Model):
        raise NotAModelError(
            f"{name} must be a keras.Model. "
            f"Received: {name}={model!r} of type {type(model).__name__}"
        )


def check_model_list(name, models, minimum=1):
    """Raises unless `models` is a list or tuple of `minimum` or more models.

    A `TypeError` names `name`, or `name[i]` for an element that is not a
    Keras model; a `ValueError` says how many models are needed.
    """
    if not isinstance(models, (list, tuple)):
        raise TypeError(
            f"{name} must be a list of keras.Model. Received: {name}={models!r}"
        )
    if len(models) < minimum:
        raise ValueError(
            f"{name} must list at least {minimum} keras.Model. "
            f"Received: {name}={models!r}"
        )
    for i, model in enumerate(models):
        check_model(f"{name}[{i}]", model)


def _check_trainable(role, model):
    if model.built and not model.trainable_weights:
        raise ValueError(
            f"The {role} {model.name!r} has no trainable weights. Set "
            f"{role}.trainable = True or pass an untrained model."
        )


def _input_shapes(model):
    inputs = getattr(model, "inputs", None)
    return [tuple(i.shape[1:]) for i in inputs] if inputs else None


def check_models(teacher, student):
    """Checks a teacher and student pair; returns their output shape.

    Raises:
        TypeError: If either is not a `keras.Model`.
        ValueError: If they are the same model, the student has nothing to
            train, or their inputs or output shapes differ.
    """
    check_model("teacher", teacher)
    check_model("student", student)
    if teacher is student:
        raise ValueError(
            "teacher and student must be different models; distilling a "
            "model into itself trains nothing. Clone it with "
            "keras.models.clone_model for self-distillation."
        )
    _check_trainable("student", student)
    teacher_shape = output_shape(teacher, "teacher")
    student_shape = output_shape(student, "student")
    if None not in (teacher_shape, student_shape) and (
        teacher_shape != student_shape
    ):
        raise ValueError(
            "teacher and student outputs must have the same shape. "
            f"Received: teacher output {teacher_shape}, "
            f"student output {student_shape}."
        )
    teacher_inputs, student_inputs = (
        _input_shapes(teacher),
        _input_shapes(student),
    )
    # Both are called on the same x (an unknown dimension agrees with any).
    if None not in (teacher_inputs, student_inputs) and not (
        len(teacher_inputs) == len(student_inputs)
        and all(
            compatible_shapes(t, s)
            for t, s in zip(teacher_inputs, student_inputs, strict=True)
        )
    ):
        raise ValueError(
            "teacher and student must take the same inputs: both are "
            f"called on x. Received: teacher inputs {teacher_inputs}, "
            f"student inputs {student_inputs}."
        )
    return student_shape


def check_students(students):
    """Checks the cohort of `kd_keras.MutualLearning`.

    Two or more distinct, trainable models with distinct names and one
    output of the same shape over two or more classes, none ending in a
    sigmoid.
    """
    check_model_list("students", students, minimum=2)
    for i, student in enumerate(students):
        _check_trainable(f"students[{i}]", student)
    if len({id(student) for student in students}) < len(students):
        raise ValueError(
            "students must be different models. Clone a model with "
            "keras.models.clone_model to train copies of it."
        )
    names = [student.name for student in students]
    if len(set(names)) < len(names):
        raise ValueError(
            "students must have distinct names, which name their losses "
            f"and metrics. Received names: {names}"
        )
    shapes = {}
    for student in students:
        output = single_output(student, "student")
        if output is not None:
            shapes[student.name] = tuple(output.shape[1:])
        if output_activation(student) == "sigmoid":
            raise ValueError(
                "MutualLearning compares softmax distributions, but "
                f"{student.name!r} ends in a sigmoid. Remove the sigmoid so "
                "it returns logits."
            )
    if len(set(shapes.values())) > 1:
        raise ValueError(
            f"All students must have the same output shape. Received: {shapes}"
        )
    if any(shape[-1] < 2 for shape in shapes.values()):
        raise ValueError(
            "MutualLearning compares softmax distributions over classes, but "
            f"the students have a single output unit: {shapes}"
        )


# --- Data ---------------------------------------------------------------


def as_numpy(value):
    """`value` as a numpy array if it is a dense tensor, else unchanged."""
    return value.numpy() if isinstance(value, tf.Tensor) else value


def _leaves(value):
    """The arrays of `value`, or `None` unless it is arrays (or `None`)."""
    leaves = keras.tree.flatten(value)
    if not all(isinstance(leaf, np.ndarray) for leaf in leaves):
        return None
    return leaves


def check_lengths(names, data):
    """Raises a `ValueError` unless the arrays of `data` hold as many
    samples each, in Keras' words ("Data cardinality is ambiguous").

    Args:
        names: The names of the parts of `data`, e.g. `("x", "y",
            "sample_weight")`.
        data: The parts: arrays, tensors or structures of them, or `None`;
            anything else (a dataset) is not counted.
    """
    counted = [
        (name, [len(leaf) for leaf in leaves])
        for name, leaves in zip(names, map(_leaves, data), strict=True)
        if leaves
    ]
    if len({size for _, sizes in counted for size in sizes}) > 1:
        raise ValueError(
            "Data cardinality is ambiguous. Make sure all arrays contain the "
            "same number of samples."
            + "".join(
                f"'{name}' sizes: {', '.join(map(str, sizes))}\n"
                for name, sizes in counted
            )
        )


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


def check_sample_shape(name, sample_shape, role, input_shape):
    """Raises a `ValueError` unless samples of `sample_shape` fit inputs of
    `input_shape` (an unknown dimension fits any).

    Args:
        name: What holds the samples, for the message (`"x"`).
        sample_shape: Their shape, without the batch axis.
        role: Whose inputs, for the message (`"the models"`).
        input_shape: The inputs' shape, without the batch axis.
    """
    sample_shape, input_shape = (
        tuple(None if n is None else int(n) for n in shape)
        for shape in (sample_shape, input_shape)
    )
    if not compatible_shapes(sample_shape, input_shape):
        raise ValueError(
            f"{name} has samples of shape {sample_shape}, but the inputs of "
            f"{role} have shape {input_shape}."
        )


def check_x(model, x, name="x", role="the models"):
    """Raises a `ValueError` if the arrays `x` do not fit `model`'s inputs."""
    expected = _input_shapes(model)
    leaves = _leaves(x)
    if expected is None or leaves is None or len(leaves) != len(expected):
        return
    for leaf, shape in zip(leaves, expected, strict=True):
        check_sample_shape(name, leaf.shape[1:], role, shape)


def check_y(name, y, output_shape):
    """Raises if the label array `y` does not fit a classifier's outputs.

    Labels are class indices in `[0, classes)` or `UNLABELLED` (shape
    `(samples,)` or `(samples, 1)`), or one-hot rows as wide as the outputs
    (`kd_keras.labels.is_one_hot`).

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
    if classes < 2 or y.size == 0:
        # Regression targets are checked by the loss.
        return
    if is_one_hot(y.shape, (None, *output_shape)):
        if y.shape[-1] != classes:
            raise ValueError(
                f"{name} has shape {y.shape}: one-hot labels need {classes} "
                "columns, one per class of the models' outputs, and integer "
                f"labels one column. Received: {name}.shape={y.shape}"
            )
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


def check_fits(model, role, sample_shape, classes):
    """Raises a `ValueError` unless `model` was made for a data set whose
    samples have `sample_shape` and whose labels are `classes` classes:
    its inputs take the samples, and it has one output per class.

    Args:
        model: A loaded `keras.Model`.
        role: What it is, for the messages (`"student"`, `"teacher t.h5"`).
        sample_shape: The shape of one sample.
        classes: The number of classes.
    """
    check_sample_shape(
        "the dataset", sample_shape, f"the {role}", model.input_shape[1:]
    )
    outputs = output_shape(model, role)
    if outputs is not None and outputs[-1] != classes:
        raise ValueError(
            f"The {role} has {outputs[-1]} outputs, but the dataset has "
            f"{classes} classes."
        )


# Stops a pipeline whose labels are out of range; `label_error` reads it.
_LABELS_OUT_OF_RANGE = "kd_keras: labels of {} out of range for {} classes"
_OUT_OF_RANGE = re.compile(
    r"kd_keras: labels of (.+) out of range for (\d+) classes\] "
    r"\[([-\d.e+]+)\] \[([-\d.e+]+)\]"
)


def check_dataset_labels(name, dataset, output_shape):
    """`dataset` with its class indices checked batch by batch.

    A dataset is not read before training, so its labels are checked as
    its batches come: a batch with a class index outside `[0, classes)`
    (other than `UNLABELLED`) stops the pipeline, and `label_error` turns
    the stop into the `ValueError` that arrays get before training (a
    classifier would fail deep in its cross-entropy, or train on NaN).
    Datasets of one-hot rows or regression targets are returned as they
    are.

    Args:
        name: The argument's name, for the message (`"x"`).
        dataset: A `tf.data.Dataset` of `(x, y)` or `(x, y, sample_weight)`.
        output_shape: The models' output shape without the batch axis.
    """
    if not isinstance(dataset, tf.data.Dataset) or output_shape is None:
        return dataset
    spec = keras.utils.unpack_x_y_sample_weight(dataset.element_spec)[1]
    classes = output_shape[-1]
    if (
        not isinstance(spec, tf.TensorSpec)
        or classes < 2
        or is_one_hot(tuple(spec.shape), (None, *output_shape))
        or not (spec.dtype.is_integer or spec.dtype.is_floating)
    ):
        return dataset
    message = _LABELS_OUT_OF_RANGE.format(name, classes)

    # Plain tensor code: AutoGraph has nothing to convert.
    @tf.autograph.experimental.do_not_convert
    def check(*element):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(
            element if len(element) > 1 else element[0]
        )
        labels = tf.cast(tf.reshape(y, [-1]), tf.float32)
        # NaN and Inf are the step's to report (`kd_keras.finite`).
        valid = (
            (labels == UNLABELLED)
            | ~tf.math.is_finite(labels)
            | (
                (labels >= 0)
                & (labels < classes)
                & (tf.floor(labels) == labels)
            )
        )
        bad = tf.boolean_mask(labels, tf.logical_not(valid))
        with tf.control_dependencies(
            [
                tf.debugging.Assert(
                    tf.reduce_all(valid),
                    [message, tf.reduce_min(bad), tf.reduce_max(bad)],
                )
            ]
        ):
            y = tf.identity(y)
        return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)

    return dataset.map(check, num_parallel_calls=tf.data.AUTOTUNE)


def label_error(error):
    """The `ValueError` for the stop of `check_dataset_labels` in `error`,
    or `None` for any other error."""
    found = _OUT_OF_RANGE.search(str(error))
    if found is None:
        return None
    name, classes, low, high = found.groups()
    low, high = float(low), float(high)
    received = (
        f"the label {low:g}"
        if low == high
        else f"labels from {low:g} to {high:g}"
    )
    return ValueError(
        f"Labels must be whole numbers in [0, {classes}) for a model with "
        f"{classes} classes, or {UNLABELLED} for an unlabelled sample. "
        f"Received a batch of {name} holding {received}."
    )


@contextlib.contextmanager
def dataset_label_errors():
    """Raises the stops of `check_dataset_labels` as their `ValueError`."""
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        converted = label_error(error)
        if converted is None:
            raise
        raise converted from None
