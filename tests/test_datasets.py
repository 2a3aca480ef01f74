"""Each loader on small files made here, in the real formats."""

import gzip
import pickle
from pathlib import Path

import keras
import numpy as np
import pytest

from kd_keras import datasets

RNG = np.random.default_rng(0)


def test_digits_split_is_deterministic_and_stratified():
    (x_train, y_train), (x_test, y_test) = datasets.load("digits")
    assert x_train.shape == (1437, 64) and x_test.shape == (360, 64)
    assert x_train.dtype == np.float32 and x_train.min() >= 0
    assert x_train.max() == 1.0
    assert np.bincount(y_test).min() >= 35
    (again, _), _ = datasets.load("digits")
    np.testing.assert_array_equal(x_train, again)
    assert datasets.num_classes(y_train) == 10


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ValueError, match="digits, fashion_mnist, mnist"):
        datasets.load("imagenet")


def write_idx(path, array):
    header = (
        bytes([0, 0, 8, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No KD_KERAS_DATA, an empty home and no Debian data."""
    monkeypatch.delenv("KD_KERAS_DATA", raising=False)
    monkeypatch.setattr(Path, "home", lambda: tmp_path / "home")
    monkeypatch.setattr(datasets, "DEBIAN_DATASETS", tmp_path / "debian")
    return tmp_path


@pytest.fixture
def fashion_folder(isolated):
    """A tiny Fashion-MNIST, laid out as Debian and Keras lay it out."""
    folder = isolated / "data" / "fashion-mnist"
    folder.mkdir(parents=True)
    arrays = {
        "train-images-idx3-ubyte.gz": RNG.integers(0, 256, (6, 28, 28)),
        "train-labels-idx1-ubyte.gz": RNG.integers(0, 10, 6),
        "t10k-images-idx3-ubyte.gz": RNG.integers(0, 256, (3, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": RNG.integers(0, 10, 3),
    }
    for name, array in arrays.items():
        write_idx(folder / name, array)
    return folder, arrays


def test_fashion_mnist_from_a_folder(fashion_folder):
    folder, arrays = fashion_folder
    (x_train, _), (x_test, y_test) = datasets.load("fashion_mnist", folder)
    assert x_train.shape == (6, 28, 28, 1) and x_test.shape == (3, 28, 28, 1)
    np.testing.assert_allclose(
        x_train[..., 0] * 255, arrays["train-images-idx3-ubyte.gz"], atol=1e-3
    )
    np.testing.assert_array_equal(y_test, arrays["t10k-labels-idx1-ubyte.gz"])


@pytest.mark.parametrize("where", ["env", "keras_cache", "debian"])
def test_fashion_mnist_search_order(fashion_folder, monkeypatch, where):
    folder, _ = fashion_folder
    root = folder.parent
    if where == "env":
        monkeypatch.setenv("KD_KERAS_DATA", str(root))
    elif where == "keras_cache":
        cache = Path.home() / ".keras" / "datasets"
        cache.parent.mkdir(parents=True)
        root.rename(cache)
    else:
        root.rename(datasets.DEBIAN_DATASETS)
    (x_train, _), _ = datasets.load("fashion_mnist")
    assert len(x_train) == 6


def test_download_when_nothing_is_local(isolated, monkeypatch):
    images = np.zeros((2, 28, 28), np.uint8)
    labels = np.array([1, 2], np.uint8)
    monkeypatch.setattr(
        keras.datasets.fashion_mnist,
        "load_data",
        lambda: ((images, labels), (images, labels)),
    )
    (x_train, y_train), _ = datasets.load("fashion_mnist")
    assert x_train.shape == (2, 28, 28, 1) and list(y_train) == [1, 2]


@pytest.mark.parametrize("name", ["fashion_mnist", "mnist", "cifar10"])
def test_offline_error_says_where_and_how(isolated, monkeypatch, name):
    def offline():
        raise OSError("network unreachable")

    monkeypatch.setattr(getattr(keras.datasets, name), "load_data", offline)
    with pytest.raises(FileNotFoundError) as error:
        datasets.load(name)
    message = str(error.value)
    assert "KD_KERAS_DATA" in message and "network unreachable" in message
    assert ".keras/datasets" in message
    assert ("apt-get install dataset-fashion-mnist" in message) == (
        name == "fashion_mnist"
    )


def test_mnist_npz_from_the_environment(isolated, monkeypatch):
    x = RNG.integers(0, 256, (4, 28, 28)).astype(np.uint8)
    y = np.array([0, 1, 2, 3], np.uint8)
    np.savez(isolated / "mnist.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    monkeypatch.setenv("KD_KERAS_DATA", str(isolated))
    (x_train, y_train), _ = datasets.load("mnist")
    np.testing.assert_allclose(x_train[..., 0], x / 255.0, atol=1e-6)
    assert y_train.dtype == np.int64


def test_cifar10_python_batches(isolated):
    folder = isolated / "cifar-10-batches-py"
    folder.mkdir()
    for i, name in enumerate(datasets._CIFAR_FILES):
        content = {
            b"data": np.full((2, 3072), i, np.uint8),
            b"labels": [i, i],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(content, f)
    (x_train, y_train), (x_test, y_test) = datasets.load("cifar10", isolated)
    assert x_train.shape == (10, 32, 32, 3) and x_test.shape == (2, 32, 32, 3)
    assert list(y_train) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    np.testing.assert_allclose(x_test, 5 / 255.0)


def test_user_npz(tmp_path):
    x = RNG.normal(size=(5, 3)).astype("float32")
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=x, y_train=np.arange(5), x_test=x, y_test=[[1]] * 5)
    (x_train, _), (_, y_test) = datasets.load(str(path))
    np.testing.assert_array_equal(x_train, x)
    assert y_test.shape == (5,)


def test_uint8_images_in_a_npz_are_not_rescaled(tmp_path):
    """A model trained on 0-255 pixels scored 0.117 on them rescaled to
    [0, 1], and an int8 export calibrated on them 0.090."""
    x = RNG.integers(0, 256, size=(4, 6, 6, 3)).astype("uint8")
    path = tmp_path / "images.npz"
    np.savez(path, x_train=x, y_train=np.arange(4), x_test=x, y_test=[0] * 4)
    (x_train, _), (x_test, _) = datasets.load(str(path))
    assert x_train.dtype == np.uint8
    np.testing.assert_array_equal(x_train, x)
    np.testing.assert_array_equal(x_test, x)


def test_npz_lacking_a_key_names_it(tmp_path):
    path = tmp_path / "partial.npz"
    np.savez(path, x_train=np.zeros(2), y_train=np.zeros(2))
    with pytest.raises(ValueError, match=r"\['x_test', 'y_test'\]"):
        datasets.load(str(path))
    with pytest.raises(FileNotFoundError, match="absent.npz"):
        datasets.load(str(tmp_path / "absent.npz"))


def test_not_an_idx_file(tmp_path):
    path = tmp_path / "bad.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"hello world")
    with pytest.raises(ValueError, match="not an unsigned-byte IDX"):
        datasets.read_idx(path)


def test_pipeline_batches_shuffles_and_keeps_pairs():
    x = np.arange(10, dtype="float32")[:, None]
    y = np.arange(10)
    batches = list(datasets.pipeline(x, y, batch_size=4, seed=1))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    xs = np.concatenate([b[0].numpy()[:, 0] for b in batches])
    ys = np.concatenate([b[1].numpy() for b in batches])
    np.testing.assert_array_equal(xs, ys)
    assert sorted(ys) == list(range(10)) and list(ys) != list(range(10))


def test_one_hot_labels_in_a_npz_become_indices(tmp_path):
    labels = np.array([2, 0, 1])
    path = tmp_path / "onehot.npz"
    x = np.zeros((3, 4), "float32")
    one_hot = np.eye(3)[labels]
    np.savez(path, x_train=x, y_train=one_hot, x_test=x, y_test=one_hot)
    (_, y_train), (_, y_test) = datasets.load(str(path))
    np.testing.assert_array_equal(y_train, labels)
    np.testing.assert_array_equal(y_test, labels)


def test_split_validation_is_stratified_and_fixed():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    x = np.arange(100, dtype="float32").reshape(100, 1)
    (x_fit, y_fit), (x_val, y_val) = datasets.split_validation(x, y, 0.1)
    np.testing.assert_array_equal(np.bincount(y_val), [5, 3, 2])
    np.testing.assert_array_equal(np.bincount(y_fit), [45, 27, 18])
    # Every sample is in one part; the training part keeps its order.
    assert sorted(np.concatenate([x_fit, x_val]).ravel()) == list(range(100))
    assert np.all(np.diff(x_fit.ravel()) > 0)
    again = datasets.split_validation(x, y, 0.1)
    np.testing.assert_array_equal(again[1][0], x_val)
    other = datasets.split_validation(x, y, 0.1, seed=1)
    assert not np.array_equal(other[1][0], x_val)


def test_split_validation_of_one_hot_dicts_and_targets():
    y = np.eye(2)[np.repeat([0, 1], [8, 12])]
    x = {"a": np.arange(20), "b": np.arange(20) * 2}
    (x_fit, _), (x_val, y_val) = datasets.split_validation(x, y, 0.25)
    np.testing.assert_array_equal(y_val.sum(0), [2, 3])
    np.testing.assert_array_equal(x_val["b"], 2 * x_val["a"])
    assert len(x_fit["a"]) == 15
    targets = np.linspace(0, 1, 20)
    (_, t_fit), (_, t_val) = datasets.split_validation(x, targets, 0.25)
    assert (len(t_fit), len(t_val)) == (15, 5)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.5])
def test_split_validation_needs_a_fraction(bad):
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\)"):
        datasets.split_validation(np.zeros((4, 1)), np.arange(4), bad)
