"""Datasets as numpy arrays: `(x_train, y_train), (x_test, y_test)`.

The bundled datasets' images come as float32 in [0, 1] with a channel axis
(what the models of `saved_models/` were trained on); a `.npz` file's
inputs come as they are stored, never rescaled. Labels come as int64 class
indices.
Keras' datasets are looked for on disk first (an explicit `path`, then
`$KD_KERAS_DATA`, Keras' cache `~/.keras/datasets`, Debian's
`/usr/share/datasets`), and downloaded by Keras only when nothing is found.
"""

import gzip
import os
import pickle
from pathlib import Path

import numpy as np

from kd_keras.hyperparameters import check_fraction

NAMES = ("digits", "fashion_mnist", "mnist", "cifar10")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
DEBIAN_DATASETS = Path("/usr/share/datasets")
_IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
_CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)


def _digits(test_fraction=0.2, split_seed=0):
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as error:
        raise ImportError(
            "The digits dataset comes with scikit-learn: pip install "
            "scikit-learn (or kd_keras[app])."
        ) from error

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


def _read_idx_folder(folder):
    x_train, y_train, x_test, y_test = (
        read_idx(folder / name) for name in _IDX_FILES
    )
    return (x_train, y_train), (x_test, y_test)


def _read_mnist_npz(folder):
    with np.load(folder / "mnist.npz") as f:
        return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])


def _read_cifar_folder(folder):
    def batch(name):
        with open(folder / name, "rb") as f:
            content = pickle.load(f, encoding="bytes")
        images = content[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return images, np.array(content[b"labels"])

    train = [batch(name) for name in _CIFAR_FILES[:-1]]
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return (x_train, y_train), batch(_CIFAR_FILES[-1])


# Where each Keras dataset's files sit inside a data folder, and how to read
# them: (sub-folder, file names, reader of the folder).
_LAYOUTS = {
    "fashion_mnist": ("fashion-mnist", _IDX_FILES, _read_idx_folder),
    "mnist": ("", ("mnist.npz",), _read_mnist_npz),
    "cifar10": ("cifar-10-batches-py", _CIFAR_FILES, _read_cifar_folder),
}


def search_folders(name, path=None):
    """The folders searched, in order, for the files of dataset `name`."""
    subfolder = _LAYOUTS[name][0]
    roots = [Path(path)] if path else []
    if os.environ.get("KD_KERAS_DATA"):
        roots.append(Path(os.environ["KD_KERAS_DATA"]))
    folders = []
    for root in roots:
        folders += [root / subfolder, root] if subfolder else [root]
    folders.append(Path.home() / ".keras" / "datasets" / subfolder)
    if subfolder:
        folders.append(DEBIAN_DATASETS / subfolder)
    return folders


def _keras_dataset(name, path):
    subfolder, files, reader = _LAYOUTS[name]
    folders = search_folders(name, path)
    for folder in folders:
        if all((folder / f).is_file() for f in files):
            return reader(folder)
    import keras

    try:
        return getattr(keras.datasets, name).load_data()
    except Exception as error:
        searched = "\n  ".join(str(f) for f in folders)
        put = (
            f"Put its files ({', '.join(files)}) in a folder and pass it as "
            "path= or set KD_KERAS_DATA to it."
        )
        if name == "fashion_mnist":
            put = (
                "Install it with `apt-get install dataset-fashion-mnist` "
                f"(Debian/Ubuntu). {put}"
            )
        raise FileNotFoundError(
            f"{name} was not found in:\n  {searched}\nand Keras could not "
            f"download it ({error}). {put}"
        ) from None


def _load_npz(path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No dataset file at {str(path)!r}.")
    with np.load(path) as f:
        missing = [key for key in NPZ_KEYS if key not in f.files]
        if missing:
            raise ValueError(
                f"{str(path)!r} lacks the arrays {missing}; a dataset .npz "
                f"holds {', '.join(NPZ_KEYS)}. It holds: {sorted(f.files)}."
            )
        return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])


def _standardize(split, scale=True):
    """Integer labels as int64 (one-hot rows as class indices); with
    `scale`, uint8 images as float32 in [0, 1] with a channel axis."""
    x, y = split
    if scale and x.dtype == np.uint8:
        x = x.astype("float32") / 255.0
        if x.ndim == 3:
            x = x[..., np.newaxis]
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        y = np.argmax(y, axis=1)  # one-hot
    return x, y.reshape(-1).astype("int64")


def load(name, path=None):
    """Loads a dataset by name, or a `.npz` file by path.

    - `"digits"`: scikit-learn's bundled 8x8 handwritten digits (1,797
      samples, 64 features scaled to [0, 1], 10 classes), split 80/20,
      stratified, with a fixed seed.
    - `"fashion_mnist"`, `"mnist"`: 60,000 + 10,000 28x28x1 images,
      float32 in [0, 1].
    - `"cifar10"`: 50,000 + 10,000 32x32x3 images, float32 in [0, 1].
    - a path ending in `.npz`, holding `x_train, y_train, x_test, y_test`:
      the inputs as stored (uint8 images stay 0-255, the pixels a model
      trained on them expects); one-hot labels become class indices.

    Args:
        name: One of `kd_keras.datasets.NAMES`, or a `.npz` path.
        path: Folder holding a Keras dataset's files (as Keras' cache lays
            them out). Defaults to `None`: `$KD_KERAS_DATA`, then Keras'
            cache, then Debian's location, then Keras' download.

    Returns:
        `(x_train, y_train), (x_test, y_test)` as numpy arrays.

    Example:

    >>> (x_train, y_train), (x_test, y_test) = kd_keras.datasets.load("digits")
    >>> x_train.shape, x_test.shape, y_train.dtype
    ((1437, 64), (360, 64), dtype('int64'))
    """
    if str(name).endswith(".npz"):
        train, test = _load_npz(name)
        return _standardize(train, scale=False), _standardize(test, False)
    if name == "digits":
        return _digits()
    if name in _LAYOUTS:
        train, test = _keras_dataset(name, path)
    else:
        raise ValueError(
            f"Unknown dataset {name!r}. Known datasets: {', '.join(NAMES)}, "
            "or a .npz file with x_train, y_train, x_test, y_test."
        )
    return _standardize(train), _standardize(test)


def split_validation(x, y, fraction, seed=0):
    """`((x, y), (x_val, y_val))`: `fraction` of each class held out.

    Class labels (integer indices, or one-hot rows by their largest entry)
    are stratified: each class gives `round(fraction * its samples)` to
    the validation part, chosen at random, so both parts keep the class
    shares. Other targets are held out at random. The samples keep their
    order in the training part; the same `seed` holds out the same ones.

    Args:
        x: The inputs: an array, or a dict of arrays.
        y: The labels or targets, an array.
        fraction: The share held out, in (0, 1).
        seed: Seed of the choice. Defaults to `0`.

    Returns:
        `((x, y), (x_val, y_val))`.

    Example:

    >>> x, y = np.arange(10).reshape(10, 1), np.arange(10) % 2
    >>> (x_fit, y_fit), (x_val, y_val) = kd_keras.datasets.split_validation(
    ...     x, y, 0.2
    ... )
    >>> len(y_fit), sorted(y_val.tolist())
    (8, [0, 1])
    """
    fraction = check_fraction("fraction", fraction)
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    if y.ndim == 2 and y.shape[1] > 1:
        strata = np.argmax(y, axis=1)
    elif np.issubdtype(y.dtype, np.integer):
        strata = y.reshape(len(y))
    else:
        strata = np.zeros(len(y), "int64")
    held = np.concatenate(
        [
            rng.permutation(np.flatnonzero(strata == c))[
                : round(fraction * np.sum(strata == c))
            ]
            for c in np.unique(strata)
        ]
    )
    kept = np.setdiff1d(np.arange(len(y)), held)

    def take(rows):
        if isinstance(x, dict):
            return {key: value[rows] for key, value in x.items()}, y[rows]
        return x[rows], y[rows]

    return take(kept), take(held)


# Image folders (`kd_keras.images`): the names of each part's folder, and
# the files read as images.
FOLDERS = {
    "train": ("train",),
    "validation": ("val", "validation"),
    "test": ("test",),
    "unlabelled": ("unlabelled", "unlabeled"),
}
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")


def find_folder(root, part):
    """The folder of `part` under `root`, or `None`."""
    for name in FOLDERS[part]:
        if (root / name).is_dir():
            return root / name
    return None


def _has_images(folder):
    return any(
        path.suffix.lower() in IMAGE_SUFFIXES for path in folder.iterdir()
    )


def check_layout(directory):
    """Raises a `ValueError` saying what is wrong unless `directory` holds
    the layout `kd_keras.images.image_folders` reads; returns its path.

    Reads only the folder names: loads no TensorFlow, so the command line
    checks a folder before loading it.
    """
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"No folder at {str(root)!r}.")
    if find_folder(root, "train") is None:
        if not _has_images(root) and any(p.is_dir() for p in root.iterdir()):
            raise ValueError(
                f"{str(root)!r} has no train/ folder. An image data set is "
                "a folder holding train/<class>/ (and optionally val/, "
                "test/ and unlabelled/); if these are the class folders "
                f"of the training images, pass {str(root.parent)!r} "
                "holding them as train/."
            )
        raise ValueError(
            f"{str(root)!r} holds no train/ folder of class folders. An "
            "image data set is a folder holding train/<class>/*.png (and "
            "optionally val/, test/ and unlabelled/)."
        )
    return root


def check(dataset):
    """Raises a clear error unless `dataset` names a bundled dataset, a
    `.npz` file or a folder of images (`check_layout`). Loads no
    TensorFlow: the command line checks `--dataset` before loading it."""
    if Path(dataset).is_dir():
        check_layout(dataset)
    elif str(dataset).endswith(".npz"):
        if not Path(dataset).is_file():
            raise FileNotFoundError(f"No dataset file at {str(dataset)!r}.")
    elif dataset not in NAMES:
        raise ValueError(
            f"Unknown dataset {dataset!r}. Known datasets: "
            f"{', '.join(NAMES)}, a .npz file with x_train, y_train, "
            "x_test, y_test, or a folder of images holding train/<class>/ "
            "(and val/, test/, unlabelled/)."
        )


def num_classes(y):
    """Number of classes of integer labels `y`."""
    return int(np.max(y)) + 1


def pipeline(x, y, batch_size=64, shuffle=True, seed=0):
    """A batched, prefetched `tf.data.Dataset` of `(x, y)`.

    Args:
        x: Inputs.
        y: Labels.
        batch_size: Samples per batch. Defaults to `64`.
        shuffle: Whether to reshuffle every epoch. Defaults to `True`.
        seed: Seed of the shuffle. Defaults to `0`.

    Returns:
        A `tf.data.Dataset` of `(x, y)` batches.

    Example:

    >>> dataset = kd_keras.datasets.pipeline(
    ...     np.zeros((10, 3)), np.arange(10), batch_size=4
    ... )
    >>> [len(y) for _, y in dataset]
    [4, 4, 2]
    """
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        dataset = dataset.shuffle(len(x), seed=seed)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


__all__ = [
    "NAMES",
    "load",
    "split_validation",
    "pipeline",
]
