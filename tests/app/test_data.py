"""The command line on a folder of images: the data a command reads
(`kd_keras.app.data`), and the four commands of the job end to end."""

import json

import numpy as np
import pytest
from conftest import digit_images
from in_process import kd_keras

from kd_keras import images
from kd_keras.app import data as app_data

CLASSES = [str(c) for c in range(10)]


def run(*args, cwd):
    """`kd-keras args` in `cwd`: `(status, stdout, stderr)`."""
    result = kd_keras(*args, cwd=cwd)
    return result.returncode, result.stdout, result.stderr


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """`data/`: 8x8 grayscale digits as PNGs, in train/ (300), val/ (100),
    test/ (100) and unlabelled/ (200)."""
    root = tmp_path_factory.mktemp("images")
    x, y = digit_images(700)
    data = root / "data"
    images.save_images(data / "train", x[:300], y[:300], CLASSES)
    images.save_images(data / "val", x[300:400], y[300:400], CLASSES)
    images.save_images(data / "test", x[400:500], y[400:500], CLASSES)
    images.save_images(data / "unlabelled", x[500:])
    return root


def test_a_folder_is_read_as_the_protocol_trains_on_it(folder):
    data = app_data.load(folder / "data", batch_size=64)
    assert data.is_folder and data.classes == 10
    assert data.input_shape == (8, 8, 3)  # the first image's size, rgb
    assert data.counts == {
        "train": 300,
        "validation": 100,
        "test": 100,
        "unlabelled": 200,
    }
    labels = np.concatenate([y.numpy() for _, y in data.distillation])
    assert len(labels) == 500 and np.sum(labels == -1) == 200
    arrays = data.in_memory()
    assert arrays.distillation[0].shape == (500, 8, 8, 3)
    assert arrays.test[0].max() == 255.0  # pixels as stored
    x, y = data.labelled_sample()
    assert x.shape == (100, 8, 8, 3) and len(y) == 100


@pytest.mark.program
def test_the_job_in_four_commands(folder):
    """Train a teacher, distil a student on labelled and unlabelled images,
    evaluate it against the teacher, export it to int8."""
    common = ("--dataset", "data", "--image-size", "16", "--color-mode")
    common += ("grayscale",)
    status, out, err = run(
        "train-teacher",
        *common,
        "--epochs",
        "25",
        "--output",
        "teacher.keras",
        cwd=folder,
    )
    assert status == 0, err
    teacher = json.loads((folder / "teacher.keras.json").read_text())
    assert teacher["dataset"] == "data" and teacher["input_shape"] == [
        16,
        16,
        1,
    ]
    assert teacher["test_accuracy"] > 0.6
    status, out, err = run(
        "distill",
        "--teacher",
        "teacher.keras",
        "--student",
        "cnn",
        *common,
        "--epochs",
        "3",
        "--output",
        "student.keras",
        cwd=folder,
    )
    assert status == 0, err
    assert "teacher outputs cached" in out  # labelled and unlabelled, once
    assert "warning" not in err
    student = json.loads((folder / "student.keras.json").read_text())
    status, out, err = run(
        "evaluate",
        "student.keras",
        *common,
        "--teacher",
        "teacher.keras",
        cwd=folder,
    )
    assert status == 0, err
    assert f"test accuracy {student['test_accuracy']:.4f}" in out
    assert "agreement with teacher.keras:" in out
    status, out, err = run(
        "export",
        "student.keras",
        *common,
        "--quantize",
        "int8",
        "--output",
        "student.tflite",
        cwd=folder,
    )
    assert status == 0, err
    tflite, keras_accuracy = (
        float(word)
        for word in out.replace(",", "").split()
        if word.replace(".", "").isdigit() and "." in word
    )
    assert abs(tflite - keras_accuracy) <= 0.05
    status, out, err = run("evaluate", "student.tflite", *common, cwd=folder)
    assert status == 0 and f"test accuracy {tflite:.4f}" in out


def test_a_model_fed_other_pixels_is_reported(folder, tmp_path):
    """A teacher trained on 0-255 pixels (through a Normalization layer),
    fed the same images scaled to [0, 1] from a .npz, scores about chance:
    the commands say what to check. On 0-255 pixels they say nothing."""
    import keras

    x, y = digit_images(400, seed=1)
    pixels = np.repeat(x[..., None], 3, -1).astype("float32")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    normalize = keras.layers.Normalization(
        axis=None, mean=pixels.mean(), variance=pixels.var()
    )
    hidden = keras.layers.Dense(64, activation="relu")(
        keras.layers.Flatten()(normalize(inputs))
    )
    teacher = keras.Model(inputs, keras.layers.Dense(10)(hidden))
    teacher.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    teacher.fit(pixels[:300], y[:300], epochs=40, verbose=0)
    teacher.save(tmp_path / "t.keras")
    for name, scale in (("pixels", 1.0), ("unit", 255.0)):
        np.savez(
            tmp_path / f"{name}.npz",
            x_train=pixels[:300] / scale,
            y_train=y[:300],
            x_test=pixels[300:] / scale,
            y_test=y[300:],
        )
    warning = "about chance (0.100): is it fed the inputs it was trained on"
    for command in (
        ("evaluate", "t.keras"),
        (
            "distill",
            "--teacher",
            "t.keras",
            "--student",
            "mlp",
            "--epochs",
            "1",
            "--output",
            "s.keras",
            "--overwrite",
        ),
    ):
        status, _, err = run(*command, "--dataset", "unit.npz", cwd=tmp_path)
        assert status == 0 and warning in err, err
        status, _, err = run(*command, "--dataset", "pixels.npz", cwd=tmp_path)
        assert status == 0 and "warning" not in err, err


@pytest.mark.program
def test_an_application_student(folder, tmp_path):
    common = ("--dataset", "data", "--image-size", "32")
    status, _, err = run(
        "train-teacher",
        *common,
        "--epochs",
        "2",
        "--output",
        tmp_path / "teacher32.keras",
        cwd=folder,
    )
    assert status == 0, err
    distill = (
        "distill",
        "--teacher",
        tmp_path / "teacher32.keras",
        "--student",
        "MobileNetV3Small",
        *common,
        "--epochs",
        "1",
        "--output",
    )
    status, _, err = run(*distill, tmp_path / "mobile.keras", cwd=folder)
    assert status == 0, err
    card = json.loads((tmp_path / "mobile.keras.json").read_text())
    assert "MobileNetV3Small" in card["architecture"]
    assert card["input_shape"] == [32, 32, 3]
    # Keras 3.15 cannot load a MobileNetV3 back from .h5: refused before
    # any training, nothing written.
    status, out, err = run(*distill, tmp_path / "mobile.h5", cwd=folder)
    assert status == 1 and "cannot load back the .h5 file" in err
    assert "save it as .keras instead" in err and "Epoch" not in out
    assert not (tmp_path / "mobile.h5").exists()
    status, _, err = run(*distill, tmp_path / "no" / "m.keras", cwd=folder)
    assert status == 1 and "No folder" in err and "create it first" in err
    # The teacher takes 32x32 images, not 16x16 ones.
    status, _, err = run(
        "distill",
        "--teacher",
        tmp_path / "teacher32.keras",
        "--student",
        "MobileNetV3Small",
        "--dataset",
        "data",
        "--image-size",
        "16",
        "--output",
        tmp_path / "m2.keras",
        cwd=folder,
    )
    assert status == 1
    assert "samples of shape (16, 16, 3), but the inputs of the teacher" in err
    assert "have shape (32, 32, 3)" in err


@pytest.mark.parametrize(
    "path, message",
    [
        ("nowhere", "Unknown dataset 'nowhere'"),
        ("data/train", "has no train/ folder. An image data set is a folder"),
    ],
)
def test_a_wrong_folder_is_one_line(folder, path, message):
    status, _, err = run(
        "train-teacher", "--dataset", path, "--output", "t.keras", cwd=folder
    )
    assert status == 1 and message in err and err.count("\n") == 1
