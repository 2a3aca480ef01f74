import keras
import numpy as np
import pytest

from kd_keras.app import evaluation


def test_confusion_matrix_hand_computed():
    matrix = evaluation.confusion_matrix(
        np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2]), 3
    )
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])


def test_accuracy_agreement_and_latency():
    x = np.eye(3, dtype="float32")
    identity = keras.Sequential([keras.Input((3,)), keras.layers.Identity()])
    reverse = keras.Sequential(
        [keras.Input((3,)), keras.layers.Lambda(lambda t: t[:, ::-1])]
    )
    assert evaluation.accuracy(identity, x, np.array([0, 1, 2])) == 1.0
    assert evaluation.accuracy(identity, x, np.array([0, 0, 2])) == (
        pytest.approx(2 / 3)
    )
    # reverse picks 2, 1, 0: it agrees with identity on the middle sample.
    assert evaluation.agreement(identity, reverse, x) == pytest.approx(1 / 3)
    assert 0 < evaluation.latency_ms(identity, x, repeats=5) < 1000
