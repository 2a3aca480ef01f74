import numpy as np
import pytest

from kd_keras import datasets


def test_digits_split_is_deterministic_and_stratified():
    (x_train, y_train), (x_test, y_test) = datasets.load("digits")
    assert x_train.shape == (1437, 64) and x_test.shape == (360, 64)
    assert x_train.dtype == np.float32 and 0 <= x_train.min() <= 1
    assert x_train.max() == 1.0
    assert np.bincount(y_test).min() >= 35
    (again, _), _ = datasets.load("digits")
    np.testing.assert_array_equal(x_train, again)
    assert datasets.num_classes(y_train) == 10


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ValueError, match="Known datasets: digits"):
        datasets.load("imagenet")
