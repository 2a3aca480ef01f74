"""Datasets as numpy arrays: `(x_train, y_train), (x_test, y_test)`."""

import gzip
import os
from pathlib import Path

import numpy as np

NAMES = ("digits", "fashion_mnist")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
_FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


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


def read_idx(path):
    """Reads a gzipped IDX file (the MNIST format) into a numpy array."""
    with gzip.open(path, "rb") as f:
        content = f.read()
    if len(content) < 4 or content[:2] != b"\0\0" or content[2] != 0x08:
        raise ValueError(f"{str(path)!r} is not an unsigned-byte IDX file.")
    dims = content[3]
    shape = np.frombuffer(content, ">u4", count=dims, offset=4)
    return np.frombuffer(content, np.uint8, offset=4 + 4 * dims).reshape(
        tuple(int(n) for n in shape)
    )


def _fashion_mnist_folders(path):
    folders = [Path(path)] if path else []
    if os.environ.get("KD_KERAS_DATA"):
        root = Path(os.environ["KD_KERAS_DATA"])
        folders += [root / "fashion-mnist", root]
    folders += [
        Path.home() / ".keras" / "datasets" / "fashion-mnist",
        DEBIAN_FASHION_MNIST,
    ]
    return folders


def _fashion_mnist(path=None):
    folders = _fashion_mnist_folders(path)
    for folder in folders:
        files = [folder / name for name in _FASHION_MNIST_FILES]
        if all(f.is_file() for f in files):
            x_train, y_train, x_test, y_test = map(read_idx, files)
            break
    else:
        import keras

        try:
            (x_train, y_train), (x_test, y_test) = (
                keras.datasets.fashion_mnist.load_data()
            )
        except Exception as error:
            searched = "\n  ".join(str(f) for f in folders)
            raise FileNotFoundError(
                "Fashion-MNIST was not found in:\n  "
                f"{searched}\nand Keras could not download it ({error}). "
                "Install it with `apt-get install dataset-fashion-mnist` "
                "(Debian/Ubuntu), or put the four IDX .gz files in a folder "
                "and set KD_KERAS_DATA to it."
            ) from None

    def images(x):
        return (x.astype("float32") / 255.0)[..., np.newaxis]

    return (images(x_train), y_train.astype("int64")), (
        images(x_test),
        y_test.astype("int64"),
    )


def load(name, path=None):
    """Loads a dataset by name.

    - `"digits"`: scikit-learn's bundled 8x8 handwritten digits (1,797
      samples, 64 features scaled to [0, 1], 10 classes), split 80/20,
      stratified, with a fixed seed, so every run sees the same split.
    - `"fashion_mnist"`: 60,000 + 10,000 28x28x1 images in [0, 1], 10
      classes. Looked for, in order, in `path`, `$KD_KERAS_DATA` (or its
      `fashion-mnist/` folder), Keras' cache `~/.keras/datasets/fashion-mnist`
      and Debian's `/usr/share/datasets/fashion-mnist`; then downloaded by
      Keras.

    Args:
        name: One of `kd_keras.datasets.NAMES`.
        path: Folder holding the dataset's files. Defaults to `None`.

    Returns:
        `(x_train, y_train), (x_test, y_test)` as numpy arrays.
    """
    if name == "digits":
        return _digits()
    if name == "fashion_mnist":
        return _fashion_mnist(path)
    raise ValueError(
        f"Unknown dataset {name!r}. Known datasets: {', '.join(NAMES)}."
    )


def num_classes(y):
    """Number of classes of integer labels `y`."""
    return int(np.max(y)) + 1
