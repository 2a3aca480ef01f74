"""`kd_keras.images`: image folders read as pipelines, and labelled and
unlabelled samples mixed into one of known length."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import digit_images

import kd_keras
from kd_keras import images

CLASSES = [str(c) for c in range(10)]


@pytest.fixture
def folders(tmp_path):
    """`data/` with train/ (120), val/ (40, no class 9), test/ (40) and
    unlabelled/ (60) digits."""
    x, y = digit_images(260)
    root = tmp_path / "data"
    images.save_images(root / "train", x[:120], y[:120], CLASSES)
    keep = y[120:160] != 9
    images.save_images(
        root / "val", x[120:160][keep], y[120:160][keep], CLASSES
    )
    images.save_images(root / "test", x[160:200], y[160:200], CLASSES)
    images.save_images(root / "unlabelled", x[200:])
    return root, x, y, keep


def labels_of(dataset):
    return np.concatenate([y.numpy() for _, y in dataset])


def test_the_layout_is_read_with_one_size_and_colour_mode(folders):
    root, x, y, keep = folders
    data = images.image_folders(
        root, image_size=(8, 8), color_mode="grayscale", batch_size=16
    )
    assert data.class_names == CLASSES
    assert data.counts == {
        "train": 120,
        "validation": int(keep.sum()),
        "test": 40,
        "unlabelled": 60,
    }
    assert data.input_shape == (8, 8, 1)
    # Pixels as stored, 0-255, for every part; the labels of val/ keep the
    # training classes' indices though its class 9 is missing.
    batch, _ = next(iter(data.test))
    assert batch.dtype == tf.float32 and float(tf.reduce_max(batch)) == 255.0
    np.testing.assert_array_equal(
        np.sort(labels_of(data.validation)), np.sort(y[120:160][keep])
    )
    # The test images, as stored, each with its own label (read class by
    # class, in a fixed order).
    pairs = [
        (int(label), image[..., 0].tobytes())
        for batch, labels in data.test
        for image, label in zip(
            batch.numpy().astype("uint8"), labels.numpy(), strict=True
        )
    ]
    expected = [
        (int(c), i.tobytes())
        for c, i in zip(y[160:200], x[160:200], strict=True)
    ]
    assert sorted(pairs) == sorted(expected)
    assert [pair[0] for pair in pairs] == sorted(y[160:200].tolist())


def test_without_val_a_share_of_train_is_held_out(folders):
    root, *_ = folders
    for name in ("val",):
        for path in (root / name).rglob("*.png"):
            path.unlink()
        for path in sorted((root / name).iterdir(), reverse=True):
            path.rmdir()
        (root / name).rmdir()
    data = images.image_folders(
        root, image_size=(8, 8), validation_split=0.25, verbose=False
    )
    assert (data.counts["train"], data.counts["validation"]) == (90, 30)
    again = images.image_folders(
        root, image_size=(8, 8), validation_split=0.25, verbose=False
    )
    np.testing.assert_array_equal(
        np.sort(labels_of(data.validation)),
        np.sort(labels_of(again.validation)),
    )


def test_labelled_and_unlabelled_are_mixed_with_a_known_length(folders):
    root, *_ = folders
    data = images.image_folders(
        root, image_size=(8, 8), batch_size=16, verbose=False
    )
    mixed = data.distillation_data(seed=1)
    assert int(mixed.cardinality()) == 12  # ceil(180 / 16)
    labels = labels_of(mixed)
    assert len(labels) == 180 and np.sum(labels == -1) == 60
    # Both kinds are spread over the epoch, not one after the other.
    first_half = labels[:90]
    assert 10 < np.sum(first_half == -1) < 50


def test_a_distiller_trains_and_caches_on_the_mixed_pipeline(folders):
    import keras

    root, *_ = folders
    data = images.image_folders(
        root, image_size=(8, 8), color_mode="grayscale", verbose=False
    )

    def model(name):
        inputs = keras.Input(data.input_shape)
        x = keras.layers.Rescaling(1 / 255)(inputs)
        x = keras.layers.Flatten()(x)
        return keras.Model(inputs, keras.layers.Dense(10)(x), name=name)

    teacher, student = model("teacher"), model("student")
    distiller = kd_keras.Distiller(teacher, student, cache=True)
    distiller.compile("adam", metrics=["accuracy"])
    distiller.fit(
        data.distillation_data(),
        validation_data=data.validation,
        epochs=2,
        verbose=0,
    )
    # 180 training and 36 validation images, ten logits each.
    assert (
        distiller.teacher_cache_nbytes == (180 + data.counts["validation"]) * 40
    )


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda root: root / "nothing", "No folder at"),
        (lambda root: root / "train", "has no train/ folder.*pass"),
        (lambda root: root / "train" / "3", "holds no train/ folder"),
    ],
)
def test_a_wrong_folder_says_what_it_should_hold(folders, make, message):
    root, *_ = folders
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        images.image_folders(make(root), image_size=(8, 8))


def test_a_class_val_has_and_train_lacks_is_named(folders):
    root, x, *_ = folders
    images.save_images(root / "val", x[:2], [0, 0], ["zebra"])
    with pytest.raises(
        ValueError, match="classes the training images lack: zebra"
    ):
        images.image_folders(root, image_size=(8, 8), verbose=False)


def test_with_unlabelled_counts_by_itself():
    labelled = tf.data.Dataset.from_tensor_slices(
        (np.zeros((10, 2), "float32"), np.arange(10) % 3)
    ).batch(4)
    unlabelled = tf.data.Dataset.from_tensor_slices(
        np.ones((5, 2), "float32")
    ).batch(4)
    mixed = images.with_unlabelled(labelled, unlabelled, batch_size=3)
    assert int(mixed.cardinality()) == 5
    labels = labels_of(mixed)
    assert sorted(labels.tolist()) == sorted(
        [-1] * 5 + (np.arange(10) % 3).tolist()
    )
    with pytest.raises(ValueError, match="needs labelled and unlabelled"):
        images.with_unlabelled(labelled, unlabelled.take(0), batch_size=3)


def test_class_names_set_the_label_order(folders):
    """A teacher trained with another order than the folders' alphabetical
    one (Keras' numbering) gets its own indices."""
    root, *_ = folders
    order = CLASSES[::-1]
    data = images.image_folders(
        root, image_size=(8, 8), class_names=order, verbose=False
    )
    plain = images.image_folders(root, image_size=(8, 8), verbose=False)
    np.testing.assert_array_equal(
        np.sort(labels_of(data.test)), np.sort(9 - labels_of(plain.test))
    )
    with pytest.raises(ValueError, match="class_names must name the class"):
        images.image_folders(root, image_size=(8, 8), class_names=["0", "1"])


def test_save_images_needs_pixels(tmp_path):
    with pytest.raises(TypeError, match="images must be uint8 pixels"):
        images.save_images(tmp_path, np.zeros((2, 4, 4), "float32"))
    images.save_images(tmp_path / "u", np.zeros((2, 4, 4), "uint8"))
    assert sorted(p.name for p in (tmp_path / "u").iterdir()) == [
        "00000.png",
        "00001.png",
    ]
