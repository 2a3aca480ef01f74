"""The data of a command: a bundled data set, a `.npz` file or a folder of
images, split as the protocol trains on it.

`--dataset` names one of `kd_keras.datasets.NAMES`, a `.npz` file (read as
arrays in memory) or a folder holding `train/` and optionally `val/`,
`test/` and `unlabelled/` (read as `tf.data` pipelines by
`kd_keras.images`, streamed: a folder may be larger than memory). The
commands use one `Data` whatever it came from.
"""

import dataclasses
from pathlib import Path

import numpy as np

from kd_keras import datasets, images, models
from kd_keras.app import protocol

# A labelled sample, for the check that a teacher was fed the pixels it was
# trained on.
_SAMPLE = 500


@dataclasses.dataclass
class Data:
    """A command's data, split as the protocol trains on it.

    Args:
        name: What `--dataset` said.
        train: The labelled training data: `(x, y)` arrays, or batches.
        validation: The validation data, as `fit` takes it: `(x, y)`
            arrays (carved from the training data by `protocol.split`), or
            batches (`val/`, or a share of `train/`).
        test: The test data, `(x, y)` arrays or batches, or `None`.
        unlabelled: The training data with the images of `unlabelled/`
            marked `-1` (batches), or `None`.
        classes: The number of classes.
        input_shape: The shape of one sample.
        pixels: `255` when the inputs are image pixels in [0, 255], which
            the built-in models rescale; `None` otherwise.
        counts: Samples of each part (`train`, `validation`, `test`,
            `unlabelled`).
    """

    name: str
    train: object
    validation: object
    test: object
    unlabelled: object
    classes: int
    input_shape: tuple
    pixels: int | None
    counts: dict

    @property
    def is_folder(self):
        """Whether the data are a folder of images, read as pipelines."""
        return not isinstance(self.train, tuple)

    @property
    def architecture(self):
        """The built-in architecture for these inputs: `cnn` for images."""
        return "cnn" if len(self.input_shape) == 3 else "mlp"

    @property
    def distillation(self):
        """What a student is distilled on: every training input, the
        unlabelled ones too (their label `-1`)."""
        return self.train if self.unlabelled is None else self.unlabelled

    def new_model(self, architecture, role, seed=0):
        """A built-in model of `role` for these data, from `seed`."""
        import keras

        keras.utils.set_random_seed(seed)
        return models.build(
            architecture or self.architecture,
            role,
            self.input_shape,
            self.classes,
            rescale=None if self.pixels is None else 1 / self.pixels,
        )

    def check_fits(self, model, role):
        """Raises unless `model` takes these inputs and has one output per
        class (`kd_keras.validation.check_fits`)."""
        from kd_keras.validation import check_fits

        check_fits(model, role, self.input_shape, self.classes)

    def in_memory(self, limit_bytes=2**31):
        """These data as arrays: `self` for arrays, a folder's images read
        into memory (the unlabelled ones appended to the labelled with the
        label -1, as `distillation`) when they take at most
        `limit_bytes`."""
        if not self.is_folder:
            return self
        if self.test is None:
            raise ValueError(
                f"{self.name} has no test/ folder, on which the result is "
                "scored: put the test images in test/<class>/."
            )
        samples = sum(self.counts.values())
        nbytes = 4 * samples * int(np.prod(self.input_shape))
        if nbytes > limit_bytes:
            raise ValueError(
                f"{self.name} holds {samples:,} images, {nbytes / 2**30:.1f} "
                f"GiB as float32, more than the {limit_bytes / 2**30:.0f} GiB "
                "this command holds in memory: use a smaller --image-size or "
                "a subset of the images."
            )
        train, validation, test = (
            _arrays(part) for part in (self.train, self.validation, self.test)
        )
        unlabelled = None
        if self.unlabelled is not None:
            unlabelled = _arrays(self.unlabelled)
        return dataclasses.replace(
            self,
            train=train,
            validation=validation,
            test=test,
            unlabelled=unlabelled,
        )

    def labelled_sample(self):
        """Up to 500 labelled validation samples, as arrays."""
        if isinstance(self.validation, tuple):
            x, y = self.validation
            return x[:_SAMPLE], y[:_SAMPLE]
        xs, ys, count = [], [], 0
        for x, y in self.validation:
            xs.append(x.numpy())
            ys.append(y.numpy())
            count += len(ys[-1])
            if count >= _SAMPLE:
                break
        return np.concatenate(xs)[:_SAMPLE], np.concatenate(ys)[:_SAMPLE]


def load(
    dataset,
    seed=0,
    image_size=None,
    color_mode="rgb",
    batch_size=32,
    verbose=True,
):
    """The `Data` of `--dataset`.

    Args:
        dataset: A name, a `.npz` path or a folder of images.
        seed: Seed of the split of a folder without `val/`.
        image_size: `(height, width)` of a folder's images; `None` reads
            it from the first training image.
        color_mode: A folder's colour mode (`rgb`, `grayscale`, `rgba`).
        batch_size: A folder's batches.
        verbose: Whether Keras prints how many images each folder holds.
    """
    datasets.check(dataset)
    if not Path(dataset).is_dir():
        arrays = datasets.load(dataset)
        train, validation, _ = protocol.split(arrays, None, seed)
        x_train, y_train = train
        return Data(
            name=str(dataset),
            train=train,
            validation=validation,
            test=arrays[1],
            unlabelled=None,
            classes=datasets.num_classes(y_train),
            input_shape=tuple(x_train.shape[1:]),
            pixels=255 if x_train.dtype == np.uint8 else None,
            counts={
                "train": len(y_train),
                "validation": len(validation[1]),
                "test": len(arrays[1][1]),
                "unlabelled": 0,
            },
        )
    folders = images.image_folders(
        dataset,
        image_size=image_size or first_image_size(dataset),
        color_mode=color_mode,
        batch_size=batch_size,
        seed=seed,
        verbose=verbose,
    )
    return Data(
        name=str(dataset),
        train=folders.train,
        validation=folders.validation,
        test=folders.test,
        unlabelled=(
            folders.distillation_data(seed=seed)
            if folders.unlabelled is not None
            else None
        ),
        classes=len(folders.class_names),
        input_shape=folders.input_shape,
        pixels=255,
        counts=folders.counts,
    )


def _arrays(batches):
    """`(x, y)` arrays of a pipeline of `(x, y)` batches."""
    xs, ys = [], []
    for x, y in batches:
        xs.append(x.numpy())
        ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ys)


def first_image_size(folder):
    """`(height, width)` of the first image of `folder/train/`."""
    import tensorflow as tf

    train = Path(datasets.check_layout(folder)) / "train"
    first = next(
        (
            path
            for path in sorted(train.rglob("*"))
            if path.suffix.lower() in datasets.IMAGE_SUFFIXES
        ),
        None,
    )
    if first is None:
        raise ValueError(f"{str(train)!r} holds no image.")
    shape = tf.io.decode_image(
        tf.io.read_file(str(first)), expand_animations=False
    ).shape
    return int(shape[0]), int(shape[1])


def load_for(args):
    """The `Data` of a command's `--dataset` and its options (`--seed`,
    `--image-size`, `--color-mode`, `--batch-size`; `--quiet` keeps Keras
    from counting a folder's files aloud)."""
    return load(
        args.dataset,
        seed=getattr(args, "seed", 0),
        image_size=args.image_size,
        color_mode=args.color_mode,
        batch_size=getattr(args, "batch_size", None)
        or protocol.DEFAULTS["cnn"]["batch_size"],
        verbose=not args.quiet,
    )
