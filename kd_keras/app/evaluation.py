"""Measures of a trained model: accuracy, agreement, size, latency."""

import time

import keras
import numpy as np
import tensorflow as tf

from kd_keras.metrics import teacher_agreement


def outputs(model, x, batch_size=256):
    """`model`'s outputs on `x`, in inference mode, as one numpy array.

    Eager calls batch by batch rather than `model.predict`: measuring many
    models in one process (a sweep, a notebook) would otherwise trace a
    predict function per model, and TensorFlow warns about retracing.
    """
    return np.concatenate(
        [
            keras.ops.convert_to_numpy(
                model(x[start : start + batch_size], training=False)
            )
            for start in range(0, len(x), batch_size)
        ]
    )


def predict_classes(model, x, batch_size=256):
    """Top-1 class of `model` for each sample of `x`."""
    return np.argmax(outputs(model, x, batch_size), -1)


def accuracy(model, x, y):
    """Top-1 accuracy of `model` on `(x, y)`."""
    return float(np.mean(predict_classes(model, x) == y))


def agreement(teacher, student, x):
    """Share of `x` where `student`'s top-1 class is `teacher`'s."""
    values = teacher_agreement(outputs(teacher, x), outputs(student, x))
    return float(np.mean(keras.ops.convert_to_numpy(values)))


def confusion_matrix(y_true, y_pred, num_classes):
    """`matrix[i, j]`: samples of class `i` predicted as `j`."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def latency_ms(model, x, repeats=200):
    """Median CPU time, in milliseconds, of one single-sample prediction.

    The call is a compiled `tf.function`, warmed up first, so the time is
    the model's, not Python's.
    """
    sample = tf.constant(x[:1])
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
