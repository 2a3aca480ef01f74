"""Students saved as plain Keras files; corrupt and unsafe files refused."""

import keras
import numpy as np
import pytest
from conftest import (
    FEATURES,
    assert_reloads_without_kd_keras,
    augmented_mobilenet,
    make_data,
    make_mlp,
)

import kd_keras
from kd_keras import saving


@pytest.fixture
def distiller(teacher, student, data):
    x, y = data
    distiller = kd_keras.Distiller(teacher, student)
    distiller.compile("adam", metrics=["accuracy"])
    distiller.fit(x, y, epochs=1, verbose=0)
    return distiller


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_student_reloads_bit_identical_without_kd_keras(
    distiller, data, tmp_path, suffix, plain_keras
):
    x, _ = data
    path = distiller.save_student(tmp_path / f"student{suffix}")
    assert_reloads_without_kd_keras(
        plain_keras, path, distiller.student, x, tmp_path
    )
    reloaded = kd_keras.load_student(path)
    np.testing.assert_array_equal(
        reloaded.predict(x, verbose=0), distiller.student.predict(x, verbose=0)
    )


def test_existing_file_is_not_overwritten(distiller, tmp_path):
    path = distiller.save_student(tmp_path / "student.h5")
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        distiller.save_student(path)
    assert path.read_bytes() == before
    distiller.save_student(path, overwrite=True)
    assert kd_keras.load_student(path).count_params() > 0


def test_failed_save_leaves_the_old_file_and_no_temp(
    distiller, tmp_path, monkeypatch
):
    path = distiller.save_student(tmp_path / "student.keras")
    before = path.read_bytes()

    def crash(filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"half a model")
        raise OSError("disk full")

    monkeypatch.setattr(distiller.student, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        distiller.save_student(path, overwrite=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["student.keras"]


@pytest.mark.parametrize("name", ["student.pb", "student", "student.json"])
def test_unwritable_extension(distiller, tmp_path, name):
    with pytest.raises(ValueError, match="path must end in one of"):
        distiller.save_student(tmp_path / name)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.h5"):
        kd_keras.load_student(tmp_path / "nothing.h5")


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_truncated_file_is_named(distiller, tmp_path, suffix):
    path = distiller.save_student(tmp_path / f"student{suffix}")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=f"student{suffix}.*corrupt"):
        kd_keras.load_student(path)


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_not_a_model_file(tmp_path, suffix):
    path = tmp_path / f"notes{suffix}"
    path.write_text("these are not weights")
    with pytest.raises(ValueError, match=f"notes{suffix}"):
        kd_keras.load_student(path)


def lambda_model():
    inputs = keras.Input((FEATURES,))
    outputs = keras.layers.Lambda(lambda t: t * 2.0, name="doubler")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2)(outputs))


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_lambda_layer_refused_in_safe_mode(tmp_path, suffix):
    path = saving.save_model(lambda_model(), tmp_path / f"lambda{suffix}")
    with pytest.raises(ValueError, match="doubler.*safe_mode=False"):
        kd_keras.load_student(path)
    model = kd_keras.load_student(path, safe_mode=False)
    x, _ = make_data()
    assert model.predict(x, verbose=0).shape == (len(x), 2)


def test_save_model_creates_parent_folders(tmp_path):
    path = saving.save_model(make_mlp(4, "m"), tmp_path / "a" / "b" / "m.h5")
    assert path.is_file()


@pytest.mark.parametrize("name", ["student.H5", "student.KERAS"])
def test_extensions_are_case_sensitive_like_keras(distiller, tmp_path, name):
    with pytest.raises(ValueError, match="path must end in one of"):
        distiller.save_student(tmp_path / name)


def test_saved_files_get_the_usual_mode(distiller, tmp_path):
    import os

    umask = os.umask(0)
    os.umask(umask)
    path = distiller.save_student(tmp_path / "student.h5")
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


# --- Files Keras cannot load back ----------------------------------------


@pytest.fixture(scope="module")
def mobilenet():
    return augmented_mobilenet("student", classes=10)


def images(samples=4):
    rng = np.random.default_rng(0)
    return rng.uniform(size=(samples, 32, 32, 3)).astype("float32")


def refused_h5_message(path):
    return (
        "Keras 3.15 cannot load back the .h5 file of model 'student' (Only "
        "input tensors may be passed as positional arguments), so nothing "
        f"was written to {str(path)!r}: save it as .keras instead "
        f"({str(path.with_suffix('.keras'))!r})."
    )


def test_h5_that_keras_cannot_load_back_is_refused(mobilenet, tmp_path):
    path = tmp_path / "student.h5"
    with pytest.raises(ValueError) as info:
        saving.save_model(mobilenet, path)
    assert str(info.value) == refused_h5_message(path)
    # Neither the file, nor the temporary one, nor the .keras trial.
    assert list(tmp_path.iterdir()) == []


def test_refused_save_keeps_the_existing_file(mobilenet, tmp_path):
    path = saving.save_model(make_mlp(4, "old"), tmp_path / "student.h5")
    before = path.read_bytes()
    with pytest.raises(ValueError, match="cannot load back the .h5 file"):
        saving.save_model(mobilenet, path, overwrite=True)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["student.h5"]


def test_keras_format_holds_what_h5_cannot(mobilenet, tmp_path):
    path = saving.save_model(mobilenet, tmp_path / "student.keras")
    reloaded = kd_keras.load_student(path)
    x = images()
    np.testing.assert_allclose(
        reloaded.predict(x, verbose=0),
        mobilenet.predict(x, verbose=0),
        rtol=1e-6,
        atol=1e-6,
    )
    assert [p.name for p in tmp_path.iterdir()] == ["student.keras"]


def test_save_student_refuses_an_unloadable_h5(mobilenet, tmp_path):
    inputs = keras.Input((32, 32, 3))
    h = keras.layers.GlobalAveragePooling2D()(inputs)
    teacher = keras.Model(inputs, keras.layers.Dense(10)(h), name="teacher")
    distiller = kd_keras.Distiller(teacher, mobilenet)
    path = tmp_path / "student.h5"
    with pytest.raises(ValueError) as info:
        distiller.save_student(path)
    assert str(info.value) == refused_h5_message(path)
    assert list(tmp_path.iterdir()) == []
    path = distiller.save_student(tmp_path / "student.keras")
    assert kd_keras.load_student(path).count_params() == (
        mobilenet.count_params()
    )


def lambda_activation_model():
    inputs = keras.Input((FEATURES,))
    outputs = keras.layers.Dense(2, activation=lambda t: 2.0 * t)(inputs)
    return keras.Model(inputs, outputs, name="doubling")


@pytest.mark.filterwarnings("ignore:The object being serialized")
@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_model_no_format_holds_is_refused(tmp_path, suffix):
    # Keras writes a lambda activation, but rebuilds it under no safe_mode.
    path = tmp_path / f"doubling{suffix}"
    with pytest.raises(ValueError) as info:
        saving.save_model(lambda_activation_model(), path)
    either = "it does not load back from .keras either; " * (suffix == ".h5")
    assert str(info.value) == (
        f"Keras 3.15 cannot load back the {suffix} file of model 'doubling' "
        "(TypeError: Could not interpret activation function identifier), "
        f"so nothing was written to {str(path)!r}: {either}make the model "
        "serializable (named functions rather than lambdas; custom layers "
        "whose get_config returns every argument of their __init__)."
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_file_missing_weights_is_refused(tmp_path, monkeypatch, suffix):
    smaller = make_mlp(2, "smaller")
    monkeypatch.setattr(
        keras.models, "load_model", lambda *args, **kwargs: smaller
    )
    path = tmp_path / f"m{suffix}"
    with pytest.raises(ValueError) as info:
        saving.save_model(make_mlp(4, "m"), path)
    assert (
        "(it comes back with 30 parameters in 4 weights, not 56 in 4), so "
        f"nothing was written to {str(path)!r}"
    ) in str(info.value)
    assert list(tmp_path.iterdir()) == []


class Unregistered(keras.layers.Layer):
    def call(self, x):
        return 2.0 * x


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_unregistered_custom_layer_still_saves(tmp_path, suffix):
    # The file is sound: load_student names the class to register.
    inputs = keras.Input((FEATURES,))
    model = keras.Model(inputs, Unregistered()(inputs))
    path = saving.save_model(model, tmp_path / f"custom{suffix}")
    with pytest.raises(ValueError, match="custom object.*Unregistered"):
        kd_keras.load_student(path)
    custom_objects = {"Unregistered": Unregistered}
    reloaded = kd_keras.load_student(path, custom_objects=custom_objects)
    x, _ = make_data(samples=4)
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), 2.0 * x)


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_plain_mlp_saves_and_loads_as_before(tmp_path, suffix):
    model = make_mlp(4, "mlp")
    path = saving.save_model(model, tmp_path / f"mlp{suffix}")
    assert [p.name for p in tmp_path.iterdir()] == [f"mlp{suffix}"]
    x, _ = make_data(samples=8)
    np.testing.assert_array_equal(
        kd_keras.load_student(path).predict(x, verbose=0),
        model.predict(x, verbose=0),
    )
