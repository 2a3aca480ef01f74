"""`AttentionTransfer` against an independent numpy implementation of the
paper's attention maps and their distance."""

import numpy as np
import pytest
from references import (
    features,
    np_at,
    numeric_gradient,
    student_gradient,
    values,
)

from kd_keras import losses


def test_attention_transfer_hand_computed():
    # p=1, one channel, 1x2 positions: maps [3, 4] / 5 and [4, 3] / 5.
    got = losses.attention_transfer([[[[3.0], [4.0]]]], [[[[4.0], [3.0]]]], 1)
    np.testing.assert_allclose(values(got), [0.04], rtol=1e-5)
    # p=2: the teacher's map [1, 1] / sqrt(2); the student's two channels
    # give mean squares [1, 0]. (1 - 1/sqrt(2))**2 + 1/2 = 2 - sqrt(2),
    # averaged over two positions.
    teacher = [[[[1.0], [1.0]]]]
    student = [[[[1.0, -1.0], [0.0, 0.0]]]]
    got = losses.attention_transfer(teacher, student, 2)
    np.testing.assert_allclose(values(got), [1 - 1 / np.sqrt(2)], rtol=1e-5)


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_attention_transfer_matches_numpy(p):
    t, s = features(4, (3, 5, 4, 6)), features(5, (3, 5, 4, 2))
    expected = np_at(t, s, p)
    np.testing.assert_allclose(
        values(losses.attention_transfer(t, s, p)), expected, rtol=1e-4
    )
    loss = losses.AttentionTransfer("t", "s", p=p)
    np.testing.assert_allclose(float(loss(t, s)), expected.mean(), rtol=1e-4)


def test_attention_map_is_normalised_and_zero_safe():
    x = features(6, (2, 3, 3, 4))
    x[1] = 0.0
    maps = values(losses.attention_map(x, p=2))
    assert maps.shape == (2, 9)
    np.testing.assert_allclose(np.linalg.norm(maps[0]), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(maps[1], 0.0)
    # A dead student layer: zero features give a finite gradient.
    gradient = student_gradient(
        lambda s: losses.attention_transfer(x, s, 1),
        np.zeros((2, 3, 3, 4), "float32"),
    )
    assert np.isfinite(gradient).all()


def test_attention_transfer_gradient():
    t, s = features(7, (2, 2, 3, 3)), features(8, (2, 2, 3, 2))
    got = student_gradient(lambda s: losses.attention_transfer(t, s, 2), s)
    expected = numeric_gradient(lambda x: np_at(t, x, 2).sum(), s)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_attention_transfer_errors():
    loss = losses.AttentionTransfer("t_block", "s_block")
    with pytest.raises(ValueError, match="spatial sizes differ") as error:
        loss.make_adapter((8, 8, 16), (4, 4, 16))
    assert "'t_block'" in str(error.value)
    assert "(None, 4, 4, 16)" in str(error.value)
    with pytest.raises(ValueError, match="spatial sizes differ"):
        loss(features(0, (2, 4, 4, 3)), features(1, (2, 2, 2, 3)))
    with pytest.raises(ValueError, match="image features") as error:
        loss(features(0, (2, 4)), features(1, (2, 4)))
    assert "(None, 4)" in str(error.value)
    with pytest.raises(ValueError, match="image features"):
        loss.make_adapter((16,), (16,))
    # Different channels need no adapter.
    assert loss.make_adapter((8, 8, 16), (8, 8, 4)) is None
    with pytest.raises(ValueError, match="attention_map"):
        losses.attention_transfer(features(0, (2, 4)), features(1, (2, 4)))


@pytest.mark.parametrize("bad", [0.5, 0, -2.0])
def test_attention_transfer_bad_p(bad):
    with pytest.raises(ValueError, match="p must be >= 1. Received: p="):
        losses.AttentionTransfer("t", "s", p=bad)


def test_attention_transfer_p_type():
    with pytest.raises(TypeError, match="p must be a number"):
        losses.attention_transfer(
            features(0, (1, 2, 2, 1)), features(1, (1, 2, 2, 1)), p="2"
        )
