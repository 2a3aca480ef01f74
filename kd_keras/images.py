"""Images in folders, as Keras users keep them, read as `tf.data` pipelines.

The layout `image_folders` reads, each folder but `train/` optional:

```
data/
  train/<class>/*.png     labelled training images, one folder per class
  val/<class>/*.png       validation images (else carved from train/)
  test/<class>/*.png      test images
  unlabelled/*.png        images without a label (sub-folders are read too)
```

Images are read by `keras.utils.image_dataset_from_directory`, as float32
pixels in [0, 255] (Keras Applications take them so; put a
`keras.layers.Rescaling` in a model that wants [0, 1]), at one image size
and colour mode for every folder, so that the teacher, the student, the
calibration of an exported model and its evaluation all see the same
pixels. Nothing is rescaled behind the user's back.

`with_unlabelled` mixes labelled and unlabelled samples into one pipeline
of known length, the unlabelled marked with the label
`kd_keras.labels.UNLABELLED` (-1): the `Distiller` learns from the
teacher on every sample and from the label where there is one, and can
cache the teacher's outputs (`cache=True`) because the length is known.
"""

import dataclasses
import math
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kd_keras.datasets import check_layout, find_folder
from kd_keras.hyperparameters import check_fraction
from kd_keras.labels import UNLABELLED


@dataclasses.dataclass
class ImageFolders:
    """The pipelines of an image-folder data set (`image_folders`).

    Args:
        train: Batches of `(images, labels)` of `train/`, shuffled anew
            every epoch.
        validation: Batches of `(images, labels)` of `val/` (or of the
            share of `train/` held out), in a fixed order.
        test: Batches of `(images, labels)` of `test/` in a fixed order,
            or `None`.
        unlabelled: Batches of images of `unlabelled/`, or `None`.
        class_names: The class of each label index, from `train/`.
        counts: Images per part: `train`, `validation`, `test`,
            `unlabelled`.
        image_size: `(height, width)` of every image.
        color_mode: `"rgb"`, `"grayscale"` or `"rgba"`.
        batch_size: Images per batch.

    Example:

    ```python
    data = kd_keras.images.image_folders("data", image_size=(32, 32))
    distiller.fit(
        data.distillation_data(), validation_data=data.validation
    )
    ```
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset | None
    unlabelled: tf.data.Dataset | None
    class_names: list
    counts: dict
    image_size: tuple
    color_mode: str
    batch_size: int

    @property
    def input_shape(self):
        """The shape of one image: `(height, width, channels)`."""
        channels = {"grayscale": 1, "rgb": 3, "rgba": 4}[self.color_mode]
        return (*self.image_size, channels)

    def distillation_data(self, seed=None):
        """The labelled training images and the unlabelled ones in one
        pipeline (`with_unlabelled`), or the labelled alone when there
        is no `unlabelled/` folder."""
        if self.unlabelled is None:
            return self.train
        return with_unlabelled(
            self.train,
            self.unlabelled,
            batch_size=self.batch_size,
            counts=(self.counts["train"], self.counts["unlabelled"]),
            seed=seed,
        )


def image_folders(
    directory,
    image_size=(224, 224),
    color_mode="rgb",
    batch_size=32,
    validation_split=0.2,
    seed=0,
    interpolation="bilinear",
    class_names=None,
    verbose=True,
):
    """Reads an image-folder data set as `tf.data` pipelines.

    `train/` holds one folder per class; `val/` (or `validation/`) and
    `test/` hold the same class folders (a class missing from them is
    fine, a class they add is an error); `unlabelled/` holds images
    without a label. Without `val/`, `validation_split` of `train/` is
    held out for validation, the same images for the same `seed`. Every
    part is read at `image_size` and in `color_mode`, as float32 pixels
    in [0, 255].

    Args:
        directory: The folder holding `train/` and the others.
        image_size: `(height, width)` the images are resized to. Defaults
            to `(224, 224)`.
        color_mode: `"rgb"`, `"grayscale"` or `"rgba"`. Defaults to
            `"rgb"`.
        batch_size: Images per batch. Defaults to `32`.
        validation_split: Share of `train/` held out when there is no
            `val/` folder, in (0, 1): Keras' split, at random, not by
            class. Defaults to `0.2`.
        seed: Seed of the split and of the training images' order.
            Defaults to `0`.
        interpolation: How images are resized, as Keras takes it.
            Defaults to `"bilinear"`.
        class_names: The class folders of `train/` in the order of the
            label indices, for a teacher trained with another order than
            the names' alphabetical one. Defaults to `None`: alphabetical,
            as Keras numbers them.
        verbose: Whether Keras prints how many files it found in each
            folder. Defaults to `True`.

    Returns:
        An `ImageFolders`.

    Raises:
        ValueError: If the layout is not there, a folder holds no image,
            or `val/` or `test/` have a class `train/` lacks.

    Example:

    ```python
    data = kd_keras.images.image_folders("data", image_size=(32, 32))
    data.class_names, data.counts
    ```
    """
    root = check_layout(directory)
    image_size = tuple(int(n) for n in image_size)
    if len(image_size) != 2 or min(image_size) < 1:
        raise ValueError(
            "image_size must be (height, width). Received: "
            f"image_size={image_size!r}"
        )
    options = dict(
        image_size=image_size,
        color_mode=color_mode,
        batch_size=batch_size,
        interpolation=interpolation,
        verbose=verbose,
    )
    train_folder = find_folder(root, "train")
    found = sorted(p.name for p in train_folder.iterdir() if p.is_dir())
    if class_names is None:
        class_names = found
    elif sorted(class_names) != found:
        raise ValueError(
            "class_names must name the class folders of train/ "
            f"({', '.join(found)}), each once. Received: "
            f"class_names={list(class_names)!r}"
        )
    class_names = list(class_names)
    if not class_names:
        raise ValueError(
            f"{str(train_folder)!r} holds no class folders: put each "
            "class's images in train/<class>/."
        )
    validation_folder = find_folder(root, "validation")
    labelled = dict(options, class_names=class_names, seed=seed)
    if validation_folder is None:
        train, validation = keras.utils.image_dataset_from_directory(
            train_folder,
            validation_split=check_fraction(
                "validation_split", validation_split
            ),
            subset="both",
            **labelled,
        )
    else:
        train = keras.utils.image_dataset_from_directory(
            train_folder, **labelled
        )
        validation = _fixed_order(validation_folder, class_names, options)
    test_folder = find_folder(root, "test")
    test = (
        None
        if test_folder is None
        else _fixed_order(test_folder, class_names, options)
    )
    unlabelled_folder = find_folder(root, "unlabelled")
    unlabelled = None
    if unlabelled_folder is not None:
        unlabelled = keras.utils.image_dataset_from_directory(
            unlabelled_folder,
            labels=None,
            seed=seed,
            **options,
        )
    counts = {
        "train": _count(train),
        "validation": _count(validation),
        "test": 0 if test is None else _count(test),
        "unlabelled": 0 if unlabelled is None else _count(unlabelled),
    }
    return ImageFolders(
        train=train,
        validation=validation,
        test=test,
        unlabelled=unlabelled,
        class_names=class_names,
        counts=counts,
        image_size=image_size,
        color_mode=color_mode,
        batch_size=batch_size,
    )


def save_images(folder, images, labels=None, class_names=None):
    """Writes images as PNG files, in the layout `image_folders` reads.

    With `labels`, image `i` goes to `folder/<class_names[labels[i]]>/`;
    without, every image goes to `folder` (an `unlabelled/` folder). Files
    are numbered in order, `00000.png`, `00001.png`, ...

    Args:
        folder: The folder to write, made if needed.
        images: uint8 pixels, `(n, height, width)` or `(n, height, width,
            channels)`.
        labels: Class indices, or `None`. Defaults to `None`.
        class_names: The folder name of each class index. Defaults to
            `None`: the indices themselves.

    Example:

    ```python
    (x, y), _ = keras.datasets.fashion_mnist.load_data()
    kd_keras.images.save_images("data/train", x[:1000], y[:1000])
    ```
    """
    folder = Path(folder)
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(
            "images must be uint8 pixels, as PNG files hold them. "
            f"Received: images of dtype {images.dtype}"
        )
    if images.ndim == 3:
        images = images[..., np.newaxis]
    for i, image in enumerate(images):
        where = folder
        if labels is not None:
            label = int(labels[i])
            where = folder / (
                str(label) if class_names is None else class_names[label]
            )
        where.mkdir(parents=True, exist_ok=True)
        (where / f"{i:05d}.png").write_bytes(tf.io.encode_png(image).numpy())


def _fixed_order(folder, class_names, options):
    """Batches of `(images, labels)` of `folder`, in a fixed order, with
    the training classes' label indices."""
    found = sorted(p.name for p in folder.iterdir() if p.is_dir())
    extra = sorted(set(found) - set(class_names))
    if extra:
        raise ValueError(
            f"{str(folder)!r} has classes the training images lack: "
            f"{', '.join(extra)}. Its class folders must be among train/'s "
            f"({', '.join(class_names)})."
        )
    # Keras numbers the classes it finds; missing ones would shift them.
    dataset = keras.utils.image_dataset_from_directory(
        folder, shuffle=False, class_names=found, **options
    )
    lookup = tf.constant([class_names.index(name) for name in found])
    return dataset.map(
        lambda x, y: (x, tf.gather(lookup, y)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def _count(dataset):
    """Samples of a pipeline `image_dataset_from_directory` made."""
    paths = getattr(dataset, "file_paths", None)
    if paths is not None:
        return len(paths)
    return int(
        dataset.reduce(
            tf.constant(0, tf.int64),
            lambda total, batch: (
                total
                + tf.shape(keras.tree.flatten(batch)[0], out_type=tf.int64)[0]
            ),
        )
    )


def with_unlabelled(labelled, unlabelled, batch_size, counts=None, seed=None):
    """One pipeline of labelled and unlabelled samples, mixed at random.

    The unlabelled samples get the label `kd_keras.labels.UNLABELLED`
    (-1): a `Distiller` masks their hard-label loss and metrics and learns
    from the teacher on them. The mix is drawn anew every epoch, in
    proportion to the two counts, so every batch holds both kinds. The
    pipeline states its length (`cardinality`), so that the `Distiller`
    can cache the teacher's outputs on it (`cache=True`) and Keras shows
    the steps of an epoch.

    Args:
        labelled: Batches of `(x, y)`, class indices.
        unlabelled: Batches of `x` (or of `(x,)`).
        batch_size: Samples per batch of the result.
        counts: `(labelled samples, unlabelled samples)`, or `None` to
            count them with one pass over each pipeline. Defaults to
            `None`.
        seed: Seed of the mix. Defaults to `None`.

    Returns:
        A `tf.data.Dataset` of `(x, y)` batches.

    Example:

    ```python
    train = keras.utils.image_dataset_from_directory("data/train")
    extra = keras.utils.image_dataset_from_directory(
        "data/unlabelled", labels=None
    )
    mixed = kd_keras.images.with_unlabelled(train, extra, batch_size=32)
    ```
    """
    if counts is None:
        counts = (_count(labelled), _count(unlabelled))
    labelled_count, unlabelled_count = (int(n) for n in counts)
    total = labelled_count + unlabelled_count
    if not labelled_count or not unlabelled_count:
        raise ValueError(
            "with_unlabelled needs labelled and unlabelled samples. "
            f"Received: counts={(labelled_count, unlabelled_count)}"
        )
    labelled = labelled.unbatch()
    spec = labelled.element_spec[1]

    # Plain tensor code: AutoGraph has nothing to convert.
    @tf.autograph.experimental.do_not_convert
    def mark(*x):
        return x[0], tf.constant(UNLABELLED, spec.dtype)

    mixed = tf.data.Dataset.sample_from_datasets(
        [labelled, unlabelled.unbatch().map(mark)],
        weights=[labelled_count / total, unlabelled_count / total],
        seed=seed,
        rerandomize_each_iteration=True,
    )
    return (
        mixed.batch(batch_size)
        .apply(
            tf.data.experimental.assert_cardinality(
                math.ceil(total / batch_size)
            )
        )
        .prefetch(tf.data.AUTOTUNE)
    )


__all__ = ["ImageFolders", "image_folders", "save_images", "with_unlabelled"]
