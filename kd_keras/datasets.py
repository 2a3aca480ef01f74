"""Datasets as numpy arrays: `(x_train, y_train), (x_test, y_test)`."""

import numpy as np

NAMES = ("digits",)


def _digits(test_fraction=0.2, split_seed=0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.data / 16.0).astype("float32")
    y = data.target.astype("int64")
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=split_seed, stratify=y
    )
    return (x_train, y_train), (x_test, y_test)


def load(name):
    """Loads a dataset by name.

    `"digits"`: scikit-learn's bundled 8x8 handwritten digits (1,797
    samples, 64 features scaled to [0, 1], 10 classes), split 80/20,
    stratified, with a fixed seed, so every run sees the same split.

    Args:
        name: One of `kd_keras.datasets.NAMES`.

    Returns:
        `(x_train, y_train), (x_test, y_test)` as numpy arrays.
    """
    if name == "digits":
        return _digits()
    raise ValueError(
        f"Unknown dataset {name!r}. Known datasets: {', '.join(NAMES)}."
    )


def num_classes(y):
    """Number of classes of integer labels `y`."""
    return int(np.max(y)) + 1
