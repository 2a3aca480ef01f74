"""Measures of a trained model: accuracy, agreement, size, latency.

Each measure takes its samples as numpy arrays `x` (and labels `y`) or as
a `tf.data.Dataset` of batches whose elements are `x`, `(x, y)` or `(x, y,
sample_weight)`, as `keras.utils.image_dataset_from_directory` reads a
folder of images: the dataset is read once, batch by batch, its samples
never all in memory (`kd_keras.batches.iterate`). Labels are class
indices or one-hot rows, whose argmax is the class.
"""

import time

import keras
import numpy as np
import tensorflow as tf

from kd_keras.batches import correct, first_sample, iterate
from kd_keras.metrics import teacher_agreement


def _call(model, x_batch):
    """`model`'s outputs on one batch, in inference mode, as numpy."""
    return keras.ops.convert_to_numpy(model(x_batch, training=False))


def outputs(model, x, batch_size=256):
    """`model`'s outputs on `x`, in inference mode, as one numpy array.

    Eager calls batch by batch rather than `model.predict`: measuring many
    models in one process (a sweep, a notebook) would otherwise trace a
    predict function per model, and TensorFlow warns about retracing.
    Arrays are cut into batches of `batch_size`; a dataset is run in its
    own batches (its labels, if any, are not used).
    """
    return np.concatenate(
        [_call(model, x_batch) for x_batch, _ in iterate(x, None, batch_size)]
    )


def predict_classes(model, x, batch_size=256):
    """Top-1 class of `model` for each sample of `x` (arrays or dataset)."""
    return np.argmax(outputs(model, x, batch_size), -1)


def accuracy(model, x, y=None):
    """Top-1 accuracy of `model` on arrays `(x, y)`, or on a dataset `x`
    of `(x, y)` batches (then `y` is `None`).

    Raises a `ValueError` for arrays without `y` or with a `y` of another
    length, a dataset with `y` or without labels, or no sample.
    """
    hits = [
        correct(_call(model, x_batch), y_batch)
        for x_batch, y_batch in iterate(x, y, needs_labels=True)
    ]
    return float(np.mean(np.concatenate(hits)))


def agreement(teacher, student, x):
    """Share of `x` where `student`'s top-1 class is `teacher`'s.

    Both models run on the same batches, in one pass over a dataset `x`.
    """
    values = [
        keras.ops.convert_to_numpy(
            teacher_agreement(_call(teacher, x_batch), _call(student, x_batch))
        )
        for x_batch, _ in iterate(x)
    ]
    return float(np.mean(np.concatenate(values)))


def confusion_matrix(y_true, y_pred, num_classes):
    """`matrix[i, j]`: samples of class `i` predicted as `j`."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def latency_ms(model, x, repeats=200):
    """Median CPU time, in milliseconds, of one single-sample prediction.

    The call is a compiled `tf.function`, warmed up first, so the time is
    the model's, not Python's. The sample is the first of `x`, arrays or
    a dataset (only its first batch is read).
    """
    sample = tf.constant(first_sample(x))
    with tf.device("/CPU:0"):
        call = tf.function(lambda t: model(t, training=False))
        for _ in range(5):
            call(sample)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call(sample).numpy()
            times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))
