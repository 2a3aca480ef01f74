"""Batches of samples given as arrays or as a `tf.data.Dataset`.

The measures of a model (`kd_keras.export`'s TFLite functions, the
application's `kd_keras.app.evaluation`) take numpy arrays `x` and `y`,
or, as Keras' `fit` and `evaluate` do, a dataset of batches whose elements
are `x`, `(x, y)` or `(x, y, sample_weight)`: a folder of images read by
`keras.utils.image_dataset_from_directory` is measured as it streams,
never held in memory. `iterate` reads either, batch by batch, with one set
of checks and messages; `correct` is the one rule for comparing a
classifier's outputs with labels. Both are here, apart from the library's
modules and the application, so that either can use them: the library
never imports the application.
"""

import keras
import numpy as np
import tensorflow as tf

from kd_keras.labels import is_one_hot
from kd_keras.validation import check_lengths


def is_dataset(x):
    """Whether `x` is a `tf.data.Dataset` rather than arrays."""
    return isinstance(x, tf.data.Dataset)


def _element_labels(element):
    """`(x, y)` of a dataset element `x`, `(x, y)` or `(x, y, w)`."""
    x, y, _ = keras.utils.unpack_x_y_sample_weight(element)
    return x, y


def iterate(
    x, y=None, batch_size=256, needs_labels=False, x_name="x", y_name="y"
):
    """An iterator of `(x_batch, y_batch)` over arrays or a dataset.

    Arrays are cut into slices of `batch_size` samples, in order; `y_batch`
    is the same slice of `y`, or `None` without `y`. A dataset is read once
    in its own batches (`batch_size` is not used), as numpy arrays; the
    labels are those of its `(x, y)` or `(x, y, sample_weight)` elements,
    `None` for elements `x`. The arguments are checked at once, before the
    first batch is read; a dataset that turns out to hold no sample raises
    when it ends.

    Args:
        x: Inputs: an array (anything with `len` and slices), or a
            `tf.data.Dataset` of batches.
        y: Labels of the array `x`, or `None`. Must be `None` with a
            dataset, whose elements carry their labels. Defaults to `None`.
        batch_size: Samples per batch of an array `x`. Defaults to `256`.
        needs_labels: Whether every batch must come with labels (for an
            accuracy). Defaults to `False`.
        x_name: The name of `x` in messages. Defaults to `"x"`.
        y_name: The name of `y` in messages. Defaults to `"y"`.

    Returns:
        An iterator of `(x_batch, y_batch)` pairs.

    Raises:
        ValueError: `x` is empty; arrays `x` and `y` hold different numbers
            of samples; `y` is given with a dataset; labels are needed but
            missing (no `y` with arrays, elements without labels in a
            dataset).
    """
    if is_dataset(x):
        if y is not None:
            raise ValueError(
                f"{y_name} must be None when {x_name} is a tf.data.Dataset: "
                f"the labels come from its (x, y) batches. Received: "
                f"{y_name} of type {type(y).__name__}"
            )
        if needs_labels and _element_labels(x.element_spec)[1] is None:
            raise ValueError(
                f"{x_name} is a tf.data.Dataset whose elements carry no "
                f"labels, but an accuracy needs them: pass a dataset of "
                f"(x, y) batches, or arrays {x_name} and {y_name}. "
                f"Received: {x_name}.element_spec={x.element_spec}"
            )
        if int(x.cardinality()) == 0:
            raise _empty_dataset(x_name)
        return _dataset_batches(x, x_name)
    if needs_labels and y is None:
        raise ValueError(
            f"{y_name} is needed with arrays {x_name}: pass the labels, or "
            f"a tf.data.Dataset of (x, y) batches as {x_name}."
        )
    if len(x) == 0:
        raise ValueError(
            f"{x_name} is empty (0 samples): there is no sample to run the "
            "model on."
        )
    check_lengths(
        (x_name, y_name), (np.asarray(x), None if y is None else np.asarray(y))
    )
    return _array_batches(x, y, batch_size)


def _empty_dataset(x_name):
    return ValueError(
        f"{x_name} is an empty tf.data.Dataset (no samples): there is no "
        "sample to run the model on."
    )


def _array_batches(x, y, batch_size):
    for start in range(0, len(x), batch_size):
        stop = start + batch_size
        yield x[start:stop], None if y is None else y[start:stop]


def _dataset_batches(dataset, x_name):
    samples = 0
    for element in dataset.as_numpy_iterator():
        x, y = _element_labels(element)
        samples += len(keras.tree.flatten(x)[0])
        yield x, y
    if samples == 0:
        raise _empty_dataset(x_name)


def first_sample(x, x_name="x"):
    """The first sample of `x` (arrays or a dataset) as a batch of one.

    Args:
        x: Inputs, as `iterate` takes them.
        x_name: The name of `x` in messages. Defaults to `"x"`.

    Returns:
        The sample, with its batch axis.
    """
    for batch, _ in iterate(x, x_name=x_name):
        if len(batch):
            return batch[:1]
    raise _empty_dataset(x_name)  # Not reached: `iterate` raises first.


def correct(outputs, y):
    """Whether each sample's top-1 class is its label, as booleans.

    Labels are class indices, `(batch,)` or `(batch, 1)`, or one-hot rows
    as wide as the outputs, whose argmax is the class
    (`kd_keras.labels.is_one_hot`).

    Args:
        outputs: A classifier's outputs, `(batch, classes)`.
        y: The batch's labels.

    Returns:
        A boolean numpy array, one value per sample.
    """
    y = np.asarray(y)
    if is_one_hot(y.shape, outputs.shape):
        y = np.argmax(y, -1)
    elif y.ndim == outputs.ndim:  # (batch, 1) against (batch, classes)
        y = y.reshape(y.shape[:-1])
    return np.argmax(outputs, -1) == y
