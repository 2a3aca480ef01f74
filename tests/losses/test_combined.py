"""The article's formula `L = λ·L_soft + (1 − λ)·L_hard`
(`kd_keras.distillation_loss`) against numpy."""

import numpy as np
import pytest
from references import (
    logits,
    np_kd,
    np_softmax,
    values,
)

from kd_keras import losses


@pytest.mark.parametrize("lambda_param", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_article_formula_matches_numpy(lambda_param, temperature):
    t, s = logits(16), logits(17)
    y = np.array([0, 3, 6, 1, 2])
    hard = -np.log(np_softmax(s)[np.arange(5), y])
    expected = (
        lambda_param * np_kd(t, s, temperature) + (1 - lambda_param) * hard
    )
    got = losses.distillation_loss(y, s, t, lambda_param, temperature)
    np.testing.assert_allclose(values(got), expected, rtol=1e-4)
    one_hot = np.eye(7)[y]
    got = losses.distillation_loss(one_hot, s, t, lambda_param, temperature)
    np.testing.assert_allclose(values(got), expected, rtol=1e-4)


def test_article_formula_bad_lambda():
    with pytest.raises(ValueError, match="lambda_param must be in"):
        losses.distillation_loss([0], [[1.0, 0.0]], [[1.0, 0.0]], 1.5)


def test_article_formula_with_an_unknown_batch_size():
    import tensorflow as tf

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None, 3]),
            tf.TensorSpec([None, 3]),
        ]
    )
    def loss(y, s, t):
        return losses.distillation_loss(y, s, t)

    t, s = logits(20, (4, 3)), logits(21, (4, 3))
    y = np.array([0, 2, 1, 1])
    np.testing.assert_allclose(
        loss(y, s, t).numpy(),
        values(losses.distillation_loss(y, s, t)),
        rtol=1e-6,
    )
