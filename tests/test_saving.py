"""Students saved as plain Keras files; corrupt and unsafe files refused."""

import keras
import numpy as np
import pytest
from conftest import (
    FEATURES,
    assert_reloads_without_kd_keras,
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
