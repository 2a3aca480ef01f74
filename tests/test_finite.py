"""`kd_keras.finite`: NaN and Inf found in the data before training, and
never written into a model by an update."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import make_mlp

from kd_keras import finite


def test_check_array_names_the_first_bad_sample():
    x = np.zeros((5, 3), "float32")
    x[1, 2], x[3, 0] = np.nan, np.inf
    with pytest.raises(
        ValueError,
        match=r"^x holds NaN or Inf in 2 of 5 samples of batch 2 \(first: "
        r"sample 1: \[ 0\.  0\. nan\]\.\.\.\)\. Remove or impute them",
    ):
        finite.check_array("x", x, where=" of batch 2")
    finite.check_array("y", np.arange(5))  # integers are finite
    finite.check_array("x", {"a": np.ones((2, 2)), "b": None})


def test_what_was_checked_before_training():
    x = np.zeros((4, 2))
    assert finite.checked_before_training((x, tf.constant(x), None))
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(2)
    assert not finite.checked_before_training((dataset, None, None))


def test_a_dataset_batch_is_named():
    bad = (np.ones((2, 2)), np.array([0.0, np.nan]))
    with pytest.raises(
        ValueError, match=r"^validation_data \(y\) holds NaN.* of batch 3"
    ):
        finite.check_batch("validation_data", 3, bad)


@pytest.mark.parametrize(
    "dtype, cause",
    [("float16", "overflow above 65504"), ("float32", "the teacher is broken")],
)
def test_teacher_outputs_say_who_is_to_blame(dtype, cause):
    stored = {"logits": np.array([[1.0, np.inf]], dtype)}
    with pytest.raises(ValueError, match=f"\\(logits\\) are NaN.*{cause}"):
        finite.check_teacher_outputs(stored, dtype)


def test_non_finite_float_labels_become_zero():
    labels = tf.constant([1.0, np.nan, np.inf])
    np.testing.assert_array_equal(
        finite.zero_non_finite(labels).numpy(), [1.0, 0.0, 0.0]
    )
    integers = tf.constant([2, 3])
    assert finite.zero_non_finite(integers) is integers


def step(guard, optimizer, variable, batch, loss):
    """One guarded SGD step on `variable`, whose gradient is 1."""
    batch = tuple(None if part is None else tf.constant(part) for part in batch)
    return guard.apply(
        optimizer, batch, tf.constant(loss), [tf.ones(2)], [variable]
    )


@pytest.mark.parametrize(
    "batch, loss, cause",
    [
        ((np.array([np.nan]), None, None), 1.0, 1),
        ((np.ones(1), np.array([np.inf]), None), 1.0, 2),
        ((np.ones(1), None, np.array([np.nan])), 1.0, 3),
        ((np.ones(1), None, None), np.nan, 4),
    ],
    ids=["inputs", "labels", "sample_weight", "loss"],
)
def test_a_non_finite_step_changes_nothing(batch, loss, cause):
    guard = finite.Guard()
    optimizer = keras.optimizers.SGD(0.5)
    variable = keras.Variable([1.0, 2.0])
    reported = step(guard, optimizer, variable, batch, loss)
    assert np.isnan(float(reported))
    np.testing.assert_array_equal(variable.numpy(), [1.0, 2.0])
    assert int(optimizer.iterations) == 0
    assert int(guard.cause.numpy()) == cause
    # The next, finite step is applied; the first cause is kept.
    reported = step(guard, optimizer, variable, (np.ones(1), None, None), 3.0)
    assert float(reported) == 3.0
    np.testing.assert_array_equal(variable.numpy(), [0.5, 1.5])
    assert int(guard.cause.numpy()) == cause


def test_data_checked_before_training_is_not_read_again():
    guard = finite.Guard()
    guard.data_checked = True
    optimizer = keras.optimizers.SGD(0.5)
    variable = keras.Variable([1.0, 2.0])
    step(guard, optimizer, variable, (np.array([np.nan]), None, None), 1.0)
    np.testing.assert_array_equal(variable.numpy(), [0.5, 1.5])


@pytest.mark.parametrize(
    "cause, problem",
    [(2, "the labels of that batch hold NaN"), (4, "the loss is not finite")],
)
def test_fit_stops_naming_the_cause(cause, problem):
    guard = finite.Guard()
    callback = finite.StopOnNonFinite(guard)
    model = make_mlp(4, "student")
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_epoch_begin(2)
    guard.cause.assign(cause)
    callback.on_train_batch_end(0, {"loss": 1.0})  # a finite batch
    with pytest.raises(
        ValueError, match=f"^Training stopped at epoch 3, batch 5: {problem}"
    ):
        callback.on_train_batch_end(4, {"loss": float("nan")})
    assert model.stop_training
