"""Unlabelled samples (class -1): masked hard-label loss, kept distillation."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import CLASSES, assert_one_sgd_step, make_mlp
from references import (
    np_cross_entropy_logit_gradient,
    np_dkd,
    np_kd,
    np_kd_logit_gradient,
    np_softmax,
)

import kd_keras
from kd_keras import labels, losses


def numpy(value):
    return keras.ops.convert_to_numpy(value)


def test_mask_unlabelled_by_hand():
    outputs = np.zeros((3, CLASSES), "float32")
    masked, weight = labels.mask_unlabelled(np.array([2, -1, 3]), outputs, None)
    np.testing.assert_array_equal(numpy(masked), [2, 0, 3])
    np.testing.assert_array_equal(numpy(weight), [1.0, 0.0, 1.0])
    column = np.array([[-1.0], [1.0], [0.0]])
    masked, weight = labels.mask_unlabelled(
        column, outputs, np.array([0.5, 2.0, 3.0])
    )
    np.testing.assert_array_equal(numpy(masked), [[0.0], [1.0], [0.0]])
    np.testing.assert_array_equal(numpy(weight), [0.0, 2.0, 3.0])


def test_weights_of_another_rank_are_aligned_not_broadcast():
    outputs = np.zeros((3, CLASSES), "float32")
    column_weights = np.array([[0.5], [2.0], [3.0]], "float32")
    _, weight = labels.mask_unlabelled(
        np.array([2, -1, 3]), outputs, column_weights
    )
    np.testing.assert_array_equal(numpy(weight), [[0.5], [0.0], [3.0]])


def test_per_position_labels_are_masked_per_position():
    """Outputs `(batch, h, w, classes)` with labels `(batch, h, w)`."""
    y = np.array([[[1, -1], [0, 2]], [[-1, -1], [3, 0]]])
    masked, weight = labels.mask_unlabelled(
        y, np.zeros((2, 2, 2, CLASSES), "float32"), None
    )
    np.testing.assert_array_equal(numpy(masked), np.where(y == -1, 0, y))
    np.testing.assert_array_equal(numpy(weight), (y != -1).astype("f4"))


@pytest.mark.parametrize(
    "y,outputs",
    [
        (-np.ones((3, CLASSES)), np.zeros((3, CLASSES))),  # one-hot shape
        (-np.ones((3, 1)), np.zeros((3, 1))),  # regression target -1
    ],
    ids=["one_hot", "regression"],
)
def test_other_labels_are_never_masked(y, outputs):
    weight = np.array([1.0, 2.0, 3.0])
    same, same_weight = labels.mask_unlabelled(y, outputs, weight)
    assert same is y and same_weight is weight


def test_fill_unlabelled_takes_the_teachers_top_class():
    teacher = np.array([[0.0, 5.0, 1.0, 0.0], [3.0, 0.0, 0.0, 0.0]])
    filled = labels.fill_unlabelled(np.array([-1, 2]), teacher)
    np.testing.assert_array_equal(numpy(filled), [1, 2])


def half_unlabelled(y):
    masked = y.copy()
    masked[1::2] = labels.UNLABELLED
    return masked


def test_evaluate_masks_the_hard_loss_only(teacher, student, data):
    x, y = data
    masked = half_unlabelled(y)
    distiller = kd_keras.Distiller(teacher, student, alpha=0.4)
    distiller.compile("sgd", metrics=["accuracy"])
    logs = distiller.evaluate(
        x, masked, batch_size=len(x), verbose=0, return_dict=True
    )
    t, s = teacher.predict(x, verbose=0), student.predict(x, verbose=0)
    known = masked != -1
    hard = -np.log(np_softmax(s)[np.arange(len(y)), y]) * known
    soft = np_kd(t, s, 4.0)
    # Averaged over the whole batch, as a sample weight of 0 is in Keras.
    np.testing.assert_allclose(logs["student_loss"], hard.mean(), rtol=1e-5)
    np.testing.assert_allclose(
        logs["distillation_loss"], soft.mean(), rtol=1e-5
    )
    np.testing.assert_allclose(
        logs["loss"], 0.4 * hard.mean() + 0.6 * soft.mean(), rtol=1e-5
    )
    np.testing.assert_allclose(
        logs["accuracy"], np.mean(s.argmax(-1)[known] == y[known]), rtol=1e-6
    )


def test_metrics_leave_unlabelled_samples_out(teacher, student, data):
    x, y = data
    masked = half_unlabelled(y)
    weights = np.linspace(0.5, 2.0, len(x))
    distiller = kd_keras.Distiller(teacher, student)
    distiller.compile(
        "sgd", metrics=["accuracy"], weighted_metrics=["accuracy"]
    )
    logs = distiller.evaluate(
        x, masked, sample_weight=weights, verbose=0, return_dict=True
    )
    right = student.predict(x, verbose=0).argmax(-1) == y
    known = masked != -1
    np.testing.assert_allclose(logs["accuracy"], right[known].mean(), 1e-6)
    np.testing.assert_allclose(
        logs["weighted_accuracy"],
        np.sum(right * known * weights) / np.sum(known * weights),
        rtol=1e-6,
    )


def test_one_step_follows_the_masked_gradient(teacher, student, data):
    x, y = data
    masked = half_unlabelled(y)
    before = student.get_weights()
    t, s = teacher.predict(x, verbose=0), student.predict(x, verbose=0)
    distiller = kd_keras.Distiller(teacher, student, alpha=0.3)
    distiller.compile(keras.optimizers.SGD(0.1))
    distiller.fit(
        x, masked, batch_size=len(x), epochs=1, shuffle=False, verbose=0
    )
    known = (masked != -1)[:, None]
    logit_gradient = (
        0.3 * known * np_cross_entropy_logit_gradient(y, s)
        + 0.7 * np_kd_logit_gradient(t, s, 4.0)
    ) / len(x)
    assert_one_sgd_step(before, student.get_weights(), x, logit_gradient, 0.1)


def test_all_unlabelled_is_pure_distillation(teacher, student, data):
    x, y = data
    distiller = kd_keras.Distiller(teacher, student, alpha=0.5)
    distiller.compile("sgd")
    history = distiller.fit(
        x, np.full_like(y, -1), batch_size=len(x), epochs=1, verbose=0
    )
    assert history.history["student_loss"] == [0.0]


def test_dkd_reads_the_teachers_class_for_unlabelled(teacher, student, data):
    x, y = data
    masked = half_unlabelled(y)
    distiller = kd_keras.Distiller(
        teacher, student, losses.DKD(warmup=0), alpha=0.0
    )
    distiller.compile("sgd")
    logs = distiller.evaluate(
        x, masked, batch_size=len(x), verbose=0, return_dict=True
    )
    t, s = teacher.predict(x, verbose=0), student.predict(x, verbose=0)
    filled = np.where(masked == -1, t.argmax(-1), masked)
    np.testing.assert_allclose(
        logs["distillation_loss"],
        np_dkd(t, s, filled, 1.0, 8.0, 4.0).mean(),
        rtol=1e-5,
    )


def test_a_dataset_with_unlabelled_samples_trains_cached(teacher, data):
    x, y = data
    dataset = tf.data.Dataset.from_tensor_slices((x, half_unlabelled(y)))
    distiller = kd_keras.Distiller(teacher, make_mlp(16, "student"), cache=True)
    distiller.compile("adam", metrics=["accuracy"])
    history = distiller.fit(dataset.batch(16), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert distiller.teacher_cache_nbytes == len(x) * CLASSES * 4


@pytest.mark.parametrize("bad", [-2, CLASSES])
def test_labels_neither_a_class_nor_the_marker_are_refused(
    teacher, student, data, bad
):
    x, y = data
    y = y.copy()
    y[5] = bad
    distiller = kd_keras.Distiller(teacher, student)
    distiller.compile("sgd")
    with pytest.raises(
        ValueError,
        match=r"^Labels must be in \[0, 4\) for a model with 4 classes, or "
        r"-1 for an unlabelled sample",
    ):
        distiller.fit(x, y, verbose=0)
