import gzip
from pathlib import Path

import keras
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
    with pytest.raises(
        ValueError, match="Known datasets: digits, fashion_mnist"
    ):
        datasets.load("imagenet")


def write_idx(path, array):
    header = (
        bytes([0, 0, 8, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fake_fashion_mnist(tmp_path):
    """A tiny Fashion-MNIST in the real file format."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (6, 28, 28)),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 6),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (3, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 3),
    }
    for name, array in arrays.items():
        write_idx(tmp_path / name, array)
    return tmp_path, arrays


@pytest.fixture
def no_default_folders(monkeypatch, tmp_path):
    monkeypatch.delenv("KD_KERAS_DATA", raising=False)
    monkeypatch.setattr(Path, "home", lambda: tmp_path / "home")
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", tmp_path / "none")


def test_fashion_mnist_from_a_folder(fake_fashion_mnist, no_default_folders):
    folder, arrays = fake_fashion_mnist
    (x_train, y_train), (x_test, y_test) = datasets.load(
        "fashion_mnist", path=folder
    )
    assert x_train.shape == (6, 28, 28, 1) and x_test.shape == (3, 28, 28, 1)
    np.testing.assert_allclose(
        x_train[..., 0] * 255, arrays["train-images-idx3-ubyte.gz"], atol=1e-3
    )
    np.testing.assert_array_equal(y_test, arrays["t10k-labels-idx1-ubyte.gz"])


def test_fashion_mnist_from_the_environment(
    fake_fashion_mnist, no_default_folders, monkeypatch
):
    folder, _ = fake_fashion_mnist
    monkeypatch.setenv("KD_KERAS_DATA", str(folder))
    (x_train, _), _ = datasets.load("fashion_mnist")
    assert len(x_train) == 6


def test_fashion_mnist_downloads_when_nothing_is_local(
    no_default_folders, monkeypatch
):
    images = np.zeros((2, 28, 28), np.uint8)
    labels = np.array([1, 2], np.uint8)
    monkeypatch.setattr(
        keras.datasets.fashion_mnist,
        "load_data",
        lambda: ((images, labels), (images, labels)),
    )
    (x_train, y_train), _ = datasets.load("fashion_mnist")
    assert x_train.shape == (2, 28, 28, 1) and list(y_train) == [1, 2]


def test_fashion_mnist_offline_error_says_where_and_how(
    no_default_folders, monkeypatch
):
    def offline():
        raise OSError("network unreachable")

    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", offline)
    with pytest.raises(FileNotFoundError) as error:
        datasets.load("fashion_mnist")
    message = str(error.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "KD_KERAS_DATA" in message and "network unreachable" in message
    assert ".keras/datasets/fashion-mnist" in message


def test_not_an_idx_file(tmp_path):
    path = tmp_path / "bad.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"hello world")
    with pytest.raises(ValueError, match="not an unsigned-byte IDX"):
        datasets.read_idx(path)
