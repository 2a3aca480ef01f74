"""`kd_keras.trainer`: the hard-label loss, the regularization, the
trackers and the data checks every trainer shares."""

import math

import keras
import numpy as np
import pytest
from conftest import FEATURES, make_data, make_mlp

from kd_keras import trainer


class Plain(trainer.Trainer):
    """The smallest trainer: the core alone, for `make_mlp`'s data."""

    def __init__(self, model=None, **kwargs):
        super().__init__(**kwargs)
        self.model = model

    @property
    def data_model(self):
        return self.model


def tensor(values):
    return keras.ops.convert_to_tensor(np.asarray(values, "float32"))


@pytest.mark.parametrize(
    "labels, outputs, activation, expected, from_logits",
    [
        ([0, 1], (2, 3), None, "SparseCategoricalCrossentropy", True),
        ([0, 1], (2, 3), "softmax", "SparseCategoricalCrossentropy", False),
        (np.eye(3)[[0, 1]], (2, 3), None, "CategoricalCrossentropy", True),
        ([[1.0], [0.0]], (2, 1), "sigmoid", "BinaryCrossentropy", False),
        ([[0.5], [2.0]], (2, 1), None, "MeanSquaredError", None),
    ],
)
def test_the_default_hard_loss_follows_labels_and_outputs(
    labels, outputs, activation, expected, from_logits
):
    loss = trainer.default_label_loss(
        tensor(labels), tensor(np.zeros(outputs)), activation
    )
    assert type(loss).__name__ == expected
    if from_logits is not None:
        assert loss.get_config()["from_logits"] is from_logits


def test_the_hard_loss_leaves_unlabelled_samples_out():
    """Cross-entropies log(1 + e^-2) and log(2) of the labelled samples, the
    unlabelled one weighted 0; Keras divides by the batch size."""
    outputs = tensor([[2.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    loss = Plain().hard_label_loss(np.array([0, -1, 1]), outputs, None, None)
    expected = (math.log(1 + math.exp(-2)) + math.log(2)) / 3
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    weighted = Plain().hard_label_loss(
        np.array([0, -1, 1]), outputs, None, np.array([2.0, 5.0, 0.0])
    )
    expected = 2 * math.log(1 + math.exp(-2)) / 3
    assert float(weighted) == pytest.approx(expected, rel=1e-6)


def test_a_loss_function_is_reduced_as_a_keras_loss():
    model = Plain()
    model.student_loss_fn = lambda y, p: keras.ops.sum(keras.ops.abs(p), -1)
    outputs = tensor([[1.0, -2.0], [0.5, 0.5]])
    loss = model.hard_label_loss(np.array([0, 1]), outputs, None, None)
    assert float(loss) == pytest.approx((3.0 + 1.0) / 2)


def regularized_model():
    inputs = keras.Input((2,))
    dense = keras.layers.Dense(
        1, kernel_regularizer=keras.regularizers.L2(0.1), name="dense"
    )
    model = keras.Model(inputs, dense(inputs))
    dense.set_weights([np.array([[1.0], [2.0]]), np.zeros(1)])
    return model


def test_regularization_is_shared_by_the_replicas(mirrored):
    model = regularized_model()
    # 0.1 * (1 + 4)
    assert float(trainer.Trainer.regularization(model)) == pytest.approx(0.5)
    with mirrored.scope():
        assert float(trainer.Trainer.regularization(model)) == pytest.approx(
            0.25
        )
    assert float(trainer.Trainer.regularization(make_mlp(4, "m"))) == 0.0


def test_trackers_get_the_mean_over_samples():
    model = Plain()
    tracker = keras.metrics.Mean(name="loss")
    model.update_trackers(np.zeros((3, 2)), [(tracker, 2.0)])
    model.update_trackers(np.zeros((1, 2)), [(tracker, 6.0)])
    assert float(tracker.result()) == pytest.approx((3 * 2.0 + 6.0) / 4)


def test_check_data_names_the_argument():
    model = Plain(make_mlp(8, "student"))
    x, y = make_data()
    names = ["validation_data[0]", "validation_data[1]", "validation_data[2]"]
    with pytest.raises(ValueError, match=r"^validation_data\[0\] is empty"):
        model.check_data(names, (x[:0], y[:0], None))
    with pytest.raises(
        ValueError, match=r"^validation_data\[1\] holds class indices"
    ):
        model.check_data(names, (x, y + 0.5, None))
    with pytest.raises(ValueError, match="inputs of the models have shape"):
        model.check_data(names, (np.zeros((4, FEATURES + 1)), y[:4], None))
    model.check_data(names, (x, y, None))
