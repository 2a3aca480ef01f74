"""Hostile and broken input: bad model files, non-finite values, bad data.

Each case checks what the user sees (the error and its message) and that
nothing is left half done. docs/RELIABILITY.md lists them.
"""

import contextlib
import re
import shutil
import zipfile

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import (
    CLASSES,
    FEATURES,
    augmented_mobilenet,
    make_data,
    make_mlp,
)

import kd_keras
from kd_keras import saving
from kd_keras.app import cli

SUFFIXES = [".h5", ".keras"]


# --- Loading model files -------------------------------------------------


@keras.saving.register_keras_serializable(package="reliability")
class Doubling(keras.layers.Layer):
    def call(self, x):
        return 2.0 * x


def small_model(*layers):
    inputs = keras.Input((FEATURES,))
    h = inputs
    for layer in layers:
        h = layer(h)
    return keras.Model(inputs, keras.layers.Dense(CLASSES)(h))


@pytest.fixture
def saved(tmp_path):
    """`saved(suffix)`: the path of a small model saved as `suffix`."""

    def save(suffix):
        return saving.save_model(small_model(), tmp_path / f"good{suffix}")

    return save


def load_error(path, **kwargs):
    with pytest.raises(ValueError) as info:
        kd_keras.load_student(path, **kwargs)
    message = str(info.value)
    assert str(path) in message
    return message


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_empty_file(tmp_path, suffix):
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"")
    assert "it is empty (0 bytes)" in load_error(path)


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("keep", [10, 0.5, -1])
def test_truncated_file(saved, suffix, keep):
    path = saved(suffix)
    data = path.read_bytes()
    end = keep if isinstance(keep, int) and keep > 0 else None
    end = end or (len(data) // 2 if keep == 0.5 else len(data) - 1)
    path.write_bytes(data[:end])
    assert "corrupt, truncated or not a Keras model" in load_error(path)


@pytest.mark.parametrize(
    "suffix,expected", [(".h5", "not an HDF5 file"), (".keras", "not a zip")]
)
def test_text_file_renamed(tmp_path, suffix, expected):
    path = tmp_path / f"notes{suffix}"
    path.write_text("layer sizes: 64, 32, 10")
    assert expected in load_error(path)


def test_keras_archive_renamed_h5(saved, tmp_path):
    path = shutil.copy(saved(".keras"), tmp_path / "model.h5")
    assert "zip archive, not HDF5" in load_error(path)


def test_h5_renamed_keras(saved, tmp_path):
    path = shutil.copy(saved(".h5"), tmp_path / "model.keras")
    assert "it is an HDF5 file; rename it to .h5" in load_error(path)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_npz_renamed(tmp_path, suffix):
    np.savez(tmp_path / "arrays.npz", x=np.zeros(3))
    path = shutil.copy(tmp_path / "arrays.npz", tmp_path / f"arrays{suffix}")
    message = load_error(path)
    expected = "no config.json" if suffix == ".keras" else "zip archive"
    assert expected in message


def test_npz_extension_is_refused(tmp_path):
    np.savez(tmp_path / "arrays.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match=r"path must end in one of.*\.npz"):
        kd_keras.load_student(tmp_path / "arrays.npz")


def test_zip_without_a_model(tmp_path):
    path = tmp_path / "other.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert "no config.json; it holds ['readme.txt']" in load_error(path)


@pytest.mark.parametrize("entry", ["config.json", "model.weights.h5"])
def test_keras_archive_with_a_damaged_entry(saved, entry):
    path = saved(".keras")
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(entry)
    data = bytearray(path.read_bytes())
    # Past the entry's 30-byte local header and its name.
    start = info.header_offset + 30 + len(entry.encode()) + 64
    data[start : start + 16] = bytes(range(16))
    path.write_bytes(bytes(data))
    assert "corrupt" in load_error(path)


@pytest.mark.parametrize("config", ["{}", "[1, 2]", "not json"])
def test_h5_with_a_bad_model_config(tmp_path, config):
    path = tmp_path / "bad_config.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = config
    assert "corrupt, truncated or not a Keras model" in load_error(path)


def test_weights_file_renamed(tmp_path):
    small_model().save_weights(tmp_path / "w.weights.h5")
    path = shutil.copy(tmp_path / "w.weights.h5", tmp_path / "model.h5")
    assert "weights only" in load_error(path)


def test_folder(tmp_path):
    (tmp_path / "saved_model.keras").mkdir()
    assert "is a folder" in load_error(tmp_path / "saved_model.keras")


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_lambda_layer_needs_safe_mode_false(tmp_path, suffix):
    model = small_model(keras.layers.Lambda(lambda t: t + 1.0, name="shift"))
    path = saving.save_model(model, tmp_path / f"lambda{suffix}")
    message = load_error(path)
    assert "Lambda layer(s) ['shift']" in message
    assert "safe_mode=False" in message
    x, _ = make_data(samples=4)
    loaded = kd_keras.load_student(path, safe_mode=False)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6
    )


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_unknown_custom_object(tmp_path, suffix, monkeypatch):
    model = small_model(Doubling())
    path = saving.save_model(model, tmp_path / f"custom{suffix}")
    monkeypatch.delitem(
        keras.saving.get_custom_objects(), "reliability>Doubling"
    )
    message = load_error(path)
    assert "custom object" in message and "Doubling" in message
    name = "reliability>Doubling"
    assert f"custom_objects={{{name!r}: Doubling}}" in message
    x, _ = make_data(samples=4)
    loaded = kd_keras.load_student(path, custom_objects={name: Doubling})
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6
    )


def lambda_activation_model():
    """A model Keras saves, in either format, but cannot rebuild."""
    inputs = keras.Input((FEATURES,))
    outputs = keras.layers.Dense(2, activation=lambda t: 2.0 * t)(inputs)
    return keras.Model(inputs, outputs)


@pytest.mark.filterwarnings("ignore:The object being serialized")
@pytest.mark.parametrize(
    "suffix,build,reason,remedy",
    [
        (
            ".h5",
            lambda: augmented_mobilenet("student", classes=10),
            "Only input tensors may be passed as positional arguments",
            "save the model as .keras instead, or build it in code",
        ),
        (
            ".keras",
            lambda_activation_model,
            "TypeError: Could not interpret activation function identifier",
            "build the model in code",
        ),
    ],
)
def test_well_formed_file_keras_cannot_rebuild(
    tmp_path, suffix, build, reason, remedy
):
    # Written by Keras itself: save_model would refuse to write it.
    model = build()
    path = tmp_path / f"student{suffix}"
    model.save(path)
    assert load_error(path) == (
        f"{str(path)!r} is a well-formed {suffix} model file, but Keras "
        f"3.15 cannot rebuild this model from it ({reason}); {remedy} and "
        f"load these weights with model.load_weights({str(path)!r})."
    )
    # The remedy works: the weights load into the model built in code.
    rebuilt = build()
    rebuilt.load_weights(path)
    x = np.random.default_rng(0).uniform(size=(2, *model.input_shape[1:]))
    np.testing.assert_array_equal(
        rebuilt.predict(x, verbose=0), model.predict(x, verbose=0)
    )


def test_damaged_weights_of_a_model_keras_rebuilds_are_corrupt(saved):
    # The config rebuilds, the weights do not read: damaged, not a limit.
    path = saved(".h5")
    with h5py.File(path, "r+") as f:
        del f["model_weights"]
    assert "corrupt, truncated or not a Keras model" in load_error(path)


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize(
    "content,expected",
    [
        (b"", "empty"),
        (b"not a model", "not a"),
    ],
)
@pytest.mark.parametrize("role", ["model", "teacher"])
def test_cli_bad_model_file_one_line(
    tmp_path, monkeypatch, capsys, suffix, content, expected, role
):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(content)
    if role == "model":
        args = ["evaluate", bad.name]
    else:
        args = ["distill", "--teacher", bad.name, "--student", "mlp"]
        args += ["--output", "s.h5"]
    status = cli.main(args)
    err = capsys.readouterr().err
    assert status == 1
    assert len(err.strip().splitlines()) == 1
    assert bad.name in err and expected in err
    assert "Traceback" not in err
    assert not (tmp_path / "s.h5").exists()


def test_cli_lambda_teacher_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    model = small_model(keras.layers.Lambda(lambda t: t, name="identity"))
    saving.save_model(model, tmp_path / "lambda.h5")
    status = cli.main(["evaluate", "lambda.h5"])
    err = capsys.readouterr().err
    assert status == 1 and len(err.strip().splitlines()) == 1
    assert "Lambda layer(s) ['identity']" in err
    assert "--unsafe" in err


def test_cli_unsafe_loads_a_trusted_lambda_model(tmp_path, capsys):
    model = small_model(keras.layers.Lambda(lambda t: t, name="identity"))
    saving.save_model(model, tmp_path / "lambda.h5")
    x, y = make_data(samples=40)
    data = tmp_path / "data.npz"
    np.savez(data, x_train=x, y_train=y, x_test=x, y_test=y)
    status = cli.main(
        [
            "evaluate",
            str(tmp_path / "lambda.h5"),
            "--dataset",
            str(data),
            "--unsafe",
        ]
    )
    out = capsys.readouterr().out
    expected = np.mean(np.argmax(model.predict(x, verbose=0), 1) == y)
    assert status == 0
    assert f"test accuracy {expected:.4f}" in out


# --- NaN and Inf ---------------------------------------------------------
#
# A compiled forward pass may turn NaN inputs into finite outputs (oneDNN's
# fused matmul and ReLU do on some CPUs), so the models here swallow NaN by
# construction: the checks must find it in the batch itself, on any machine.


class NanToZero(keras.layers.Layer):
    """Replaces NaN and Inf by 0, as a teacher's input clipping may."""

    def call(self, x):
        return keras.ops.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def swallowing_mlp(units, name):
    inputs = keras.Input((FEATURES,))
    h = keras.layers.Dense(units, activation="relu")(NanToZero()(inputs))
    return keras.Model(inputs, keras.layers.Dense(CLASSES)(h), name=name)


def fresh_pair():
    keras.utils.set_random_seed(1)
    return swallowing_mlp(32, "teacher"), swallowing_mlp(16, "student")


def with_nan(x, sample=40):
    bad = np.array(x, "float32")
    bad.reshape(len(bad), -1)[sample, -1] = np.nan
    return bad


def test_models_here_swallow_nan():
    teacher, student = fresh_pair()
    x, _ = make_data()
    for model in (teacher, student):
        assert np.isfinite(model.predict(with_nan(x), verbose=0)).all()


def batch_parts(part):
    """`(x, y, sample_weight)` with NaN in sample 40 of `part`."""
    x, y = make_data()
    parts = {"x": x, "y": y.astype("float32"), "sample_weight": np.ones(96)}
    parts[part] = with_nan(parts[part])
    return parts["x"], parts["y"], parts["sample_weight"]


@pytest.mark.parametrize("part", ["x", "y", "sample_weight"])
@pytest.mark.parametrize("validation", [False, True])
def test_non_finite_arrays_refused_before_training(part, validation):
    teacher, student = fresh_pair()
    bad = batch_parts(part)
    distiller = kd_keras.Distiller(teacher, student)
    distiller.compile("adam")
    before = student.get_weights()
    if validation:
        x, y = make_data()
        call = {"x": x, "y": y, "validation_data": bad}
        argument = f"validation_data[{['x', 'y', 'sample_weight'].index(part)}]"
    else:
        call = dict(zip(["x", "y", "sample_weight"], bad, strict=True))
        argument = part
    with pytest.raises(
        ValueError, match=f"^{re.escape(argument)} holds NaN or Inf"
    ):
        distiller.fit(**call, epochs=1, verbose=0)
    for b, a in zip(before, student.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_nan_sample_is_named():
    teacher, student = fresh_pair()
    x, y = make_data()
    distiller = kd_keras.Distiller(teacher, student)
    distiller.compile("adam")
    with pytest.raises(ValueError, match=r"in 1 of 96 samples \(first: "):
        distiller.fit(with_nan(x, 40), y, verbose=0)
    with pytest.raises(ValueError, match="first: sample 40"):
        distiller.fit(with_nan(x, 40), y, verbose=0)


def broken_teacher(weight, value):
    """A teacher whose output layer's `weight` (0 kernel, 1 bias) is scaled."""
    keras.utils.set_random_seed(1)
    teacher, student = make_mlp(32, "teacher"), make_mlp(16, "student")
    weights = teacher.get_weights()
    weights[weight - 2] = weights[weight - 2] * value
    teacher.set_weights(weights)
    return teacher, student


def test_broken_teacher_found_in_its_cached_outputs():
    # A NaN bias: no kernel can make the sum finite.
    teacher, student = broken_teacher(1, np.nan)
    x, y = make_data()
    distiller = kd_keras.Distiller(teacher, student)
    distiller.compile("adam")
    with pytest.raises(
        ValueError,
        match=r"teacher's outputs \(logits\) are NaN or Inf for 96 of 96 "
        r"samples.*inputs are finite, so the teacher is broken",
    ):
        distiller.fit(x, y, verbose=0)


def test_float16_cache_overflow_is_explained():
    teacher, student = broken_teacher(0, 1e6)
    x, y = make_data()
    distiller = kd_keras.Distiller(
        teacher, student, cache=kd_keras.TeacherCache("float16")
    )
    distiller.compile("adam")
    assert np.abs(teacher.predict(x, verbose=0)).max() > 65504
    with pytest.raises(ValueError, match="overflow above 65504"):
        distiller.fit(x, y, verbose=0)


class CountingTeacher(keras.Model):
    """Wraps a teacher and counts the samples it is called on."""

    def __init__(self, teacher):
        super().__init__()
        self.teacher = teacher
        self.seen = keras.Variable(0, dtype="int32", trainable=False)

    def call(self, x, training=False):
        self.seen.assign_add(keras.ops.shape(x)[0])
        return self.teacher(x, training=training)


@pytest.mark.parametrize("part", ["x", "y", "sample_weight"])
@pytest.mark.parametrize("validation", [False, True])
def test_nan_in_a_cached_dataset_is_found_before_the_teacher(part, validation):
    teacher, student = fresh_pair()
    counting = CountingTeacher(teacher)
    bad = tf.data.Dataset.from_tensor_slices(batch_parts(part)).batch(16)
    distiller = kd_keras.Distiller(counting, student, cache=True)
    distiller.compile("adam")
    # Sample 40 is sample 8 of the third batch of 16.
    where = r"in 1 of 16 samples of batch 3 \(first: sample 8: "
    if validation:
        good = tf.data.Dataset.from_tensor_slices(make_data()).batch(16)
        call = {"x": good, "validation_data": bad}
        match = rf"^validation_data \({part}\) holds NaN or Inf {where}"
    else:
        call = {"x": bad}
        match = rf"^{part} holds NaN or Inf {where}"
    with pytest.raises(ValueError, match=match):
        distiller.fit(**call, verbose=0)
    # The teacher saw the two good batches (and the good dataset), not the
    # bad one; the student was not trained.
    assert int(counting.seen) == 32 + (96 if validation else 0)
    assert int(distiller.optimizer.iterations) == 0


def train_on_batches(
    teacher, student, data, jit_compile, epochs=2, strategy=None
):
    """Fits a fresh distiller; returns `(error message or None, distiller)`."""
    with strategy.scope() if strategy else contextlib.nullcontext():
        distiller = kd_keras.Distiller(teacher, student, cache=False)
        distiller.compile(keras.optimizers.Adam(0.01), jit_compile=jit_compile)
    try:
        distiller.fit(data, epochs=epochs, verbose=0)
    except ValueError as error:
        return str(error), distiller
    return None, distiller


def nan_teacher_for_sample_40(teacher, x):
    """`teacher` with NaN outputs for sample 40 of `x` only, by construction."""
    inputs = keras.Input((FEATURES,))
    flag = keras.layers.Lambda(
        lambda t: keras.ops.where(t[:, :1] == x[40, 0], np.nan, 0.0)
    )(inputs)
    return keras.Model(inputs, teacher(inputs) + flag)


@pytest.mark.parametrize(
    "jit_compile,part,cause",
    [
        (False, "x", "the inputs of that batch hold NaN or Inf"),
        (True, "x", "the inputs of that batch hold NaN or Inf"),
        (False, "y", "the labels of that batch hold NaN or Inf"),
        (True, "y", "the labels of that batch hold NaN or Inf"),
        (False, "sample_weight", "the sample weights of that batch hold"),
        (False, "teacher", "the loss is not finite. The teacher's outputs"),
    ],
)
def test_non_finite_batch_stops_and_keeps_the_last_good_student(
    jit_compile, part, cause
):
    teacher, student = fresh_pair()
    initial = student.get_weights()
    if part == "teacher":
        parts = batch_parts("x")
        parts = (make_data()[0], *parts[1:])
        teacher = nan_teacher_for_sample_40(teacher, parts[0])
    else:
        parts = batch_parts(part)
    batches = tf.data.Dataset.from_tensor_slices(parts).batch(16)
    message, distiller = train_on_batches(
        teacher, student, batches, jit_compile
    )
    # Sample 40 is in the third batch of 16.
    assert message.startswith(f"Training stopped at epoch 1, batch 3: {cause}")
    assert "student keeps its weights from before it" in message
    assert int(distiller.optimizer.iterations) == 2
    # The same student trained on the two good batches only.
    reference = swallowing_mlp(16, "student")
    reference.set_weights(initial)
    train_on_batches(teacher, reference, batches.take(2), jit_compile, 1)
    for a, b in zip(
        student.get_weights(), reference.get_weights(), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_dataset_after_arrays_is_checked_in_the_step():
    # Arrays are checked whole before training, so their step checks only
    # the loss; a later fit on a dataset retraces the step with the checks.
    teacher, student = fresh_pair()
    distiller = kd_keras.Distiller(teacher, student, cache=False)
    distiller.compile(keras.optimizers.Adam(0.01))
    x, y = make_data()
    weights = np.ones(len(x))
    # Float labels and sample weights, as the dataset's.
    distiller.fit(
        x, y.astype("float32"), sample_weight=weights, batch_size=16, verbose=0
    )
    batches = tf.data.Dataset.from_tensor_slices(batch_parts("x")).batch(16)
    with pytest.raises(
        ValueError,
        match="^Training stopped at epoch 1, batch 3: the inputs of that",
    ):
        distiller.fit(batches, epochs=1, verbose=0)


def test_mutual_learning_skips_a_non_finite_batch():
    """MutualLearning shares the Distiller's guarded update."""
    keras.utils.set_random_seed(1)
    students = [swallowing_mlp(16, "a"), swallowing_mlp(8, "b")]
    initial = [s.get_weights() for s in students]
    batches = tf.data.Dataset.from_tensor_slices(batch_parts("x")).batch(16)
    cohort = kd_keras.MutualLearning(students)
    cohort.compile(keras.optimizers.Adam(0.01))
    with pytest.raises(
        ValueError,
        match="^Training stopped at epoch 1, batch 3: the inputs of that",
    ):
        cohort.fit(batches, epochs=2, verbose=0)
    assert int(cohort.optimizer.iterations) == 2
    references = [swallowing_mlp(16, "a"), swallowing_mlp(8, "b")]
    for reference, weights in zip(references, initial, strict=True):
        reference.set_weights(weights)
    reference_cohort = kd_keras.MutualLearning(references)
    reference_cohort.compile(keras.optimizers.Adam(0.01))
    reference_cohort.fit(batches.take(2), epochs=1, verbose=0)
    for student, reference in zip(students, references, strict=True):
        for a, b in zip(
            student.get_weights(), reference.get_weights(), strict=True
        ):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_non_finite_batch_under_mirrored_strategy(mirrored):
    with mirrored.scope():
        teacher, student = fresh_pair()
    initial = student.get_weights()
    batches = tf.data.Dataset.from_tensor_slices(batch_parts("x")).batch(16)
    message, _ = train_on_batches(
        teacher, student, batches, False, strategy=mirrored
    )
    assert message.startswith(
        "Training stopped at epoch 1, batch 3: the inputs of that batch"
    )
    with mirrored.scope():
        reference = swallowing_mlp(16, "student")
    reference.set_weights(initial)
    train_on_batches(
        teacher, reference, batches.take(2), False, 1, strategy=mirrored
    )
    for a, b in zip(
        student.get_weights(), reference.get_weights(), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# --- Extreme temperatures and logits, float16 ------------------------------

TEMPERATURES = [0.05, 1.0, 1000.0]
LOGIT_LOSSES = {
    "kd": lambda t: kd_keras.losses.KD(t),
    "soft_ce": lambda t: kd_keras.losses.SoftTargetCrossEntropy(t),
    "logit_mse": lambda t: kd_keras.losses.LogitMSE(),
    "dkd": lambda t: kd_keras.losses.DKD(temperature=t, warmup=0),
    "dist": lambda t: kd_keras.losses.DIST(temperature=t),
    "multilabel": lambda t: kd_keras.losses.MultiLabelKD(temperature=t),
    "regression_mse": lambda t: kd_keras.losses.RegressionKD(),
    "regression_huber": lambda t: kd_keras.losses.RegressionKD("huber"),
    "softened_kl": lambda t: kd_keras.losses.SoftenedLoss(
        keras.losses.KLDivergence(), t
    ),
}
LABELS = np.array([0, 3, 1, 2, 0, 1])


def extreme_logits(kind, dtype):
    """`(teacher, student)` logits `(6, 4)`; all finite in `dtype`."""
    rng = np.random.default_rng(3)
    if kind == "normal":
        return rng.normal(size=(2, 6, 4)) * 3
    if kind == "huge":
        # Up to float16's largest value, 65504.
        return np.clip(rng.normal(size=(2, 6, 4)) * 3e4, -6e4, 6e4)
    # Teacher and student equal and saturated: one class at +6e4.
    logits = np.where(np.eye(4)[LABELS] > 0, 6e4, -6e4)
    return np.stack([logits, logits])


def value_and_gradient(loss, teacher, student, dtype):
    teacher = tf.constant(teacher, dtype)
    student = tf.Variable(student, dtype="float32")
    labels = {"labels": LABELS} if loss.requires_labels else {}
    with tf.GradientTape() as tape:
        value = loss(teacher, tf.cast(student, dtype), **labels)
    return value.numpy(), tape.gradient(value, student).numpy()


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("kind", ["normal", "huge", "saturated"])
@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("name", sorted(LOGIT_LOSSES))
def test_losses_stay_finite(name, temperature, kind, dtype):
    loss = LOGIT_LOSSES[name](temperature)
    teacher, student = extreme_logits(kind, dtype)
    value, gradient = value_and_gradient(loss, teacher, student, dtype)
    assert value.dtype == np.float32
    assert np.isfinite(value) and value >= -1e-4 * max(1.0, temperature**2)
    if name == "dist" and dtype == "float16" and temperature > 100:
        # Correlation is scale-free, so DIST's T**2 factor is not offset
        # by softer gradients as in KD: at T = 1000 they reach ~1e5 and
        # overflow float16 to Inf (a LossScaleOptimizer skips those
        # steps). Inf is allowed there; NaN never is.
        gradient = gradient[~np.isinf(gradient)]
    assert np.isfinite(gradient).all()
    if kind == "saturated" and name not in ("dist", "soft_ce"):
        # Equal logits: no loss, no gradient.
        assert abs(value) <= 1e-6 * temperature**2
        np.testing.assert_allclose(gradient, 0.0, atol=1e-6)


def log_softmax64(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def log_sum_exp64(z):
    peak = z.max(-1)
    return peak + np.log(np.exp(z - peak[..., None]).sum(-1))


def kd64(t, s, temperature):
    log_p, log_q = (
        log_softmax64(t / temperature),
        log_softmax64(s / temperature),
    )
    return temperature**2 * (np.exp(log_p) * (log_p - log_q)).sum(-1).mean()


def dkd64(t, s, labels, temperature, tckd_weight=1.0, nckd_weight=8.0):
    mask = np.eye(t.shape[-1])[labels] > 0

    def split(z):
        z = z / temperature
        log_all = log_sum_exp64(z)
        log_rest = log_sum_exp64(np.where(mask, -np.inf, z))
        log_target = z[mask] - log_all
        return (
            log_target,
            log_rest - log_all,
            np.where(mask, -np.inf, z - log_rest[:, None]),
        )

    (pt, po, pr), (qt, qo, qr) = split(t), split(s)
    tckd = np.exp(pt) * (pt - qt) + np.exp(po) * (po - qo)
    nckd = np.where(mask, 0.0, np.exp(pr) * np.nan_to_num(pr - qr)).sum(-1)
    return temperature**2 * (tckd_weight * tckd + nckd_weight * nckd).mean()


def multilabel64(t, s, temperature):
    def log_sigmoid(z):
        return -np.logaddexp(0.0, -z)

    t, s = t / temperature, s / temperature
    kl = np.exp(log_sigmoid(t)) * (log_sigmoid(t) - log_sigmoid(s)) + np.exp(
        log_sigmoid(-t)
    ) * (log_sigmoid(-t) - log_sigmoid(-s))
    return temperature**2 * kl.mean()


@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("kind", ["normal", "huge"])
@pytest.mark.parametrize(
    "name,reference",
    [
        ("kd", lambda t, s, T: kd64(t, s, T)),
        ("dkd", lambda t, s, T: dkd64(t, s, LABELS, T)),
        ("multilabel", multilabel64),
    ],
)
def test_extreme_values_match_float64(name, reference, kind, temperature):
    teacher, student = extreme_logits(kind, "float32")
    loss = LOGIT_LOSSES[name](temperature)
    value, _ = value_and_gradient(loss, teacher, student, "float32")
    expected = reference(teacher, student, temperature)
    # At T = 1000 the distributions nearly agree and float32 loses ~0.2%
    # in the difference of nearly equal terms.
    rtol = 2e-3 if temperature < 100 else 1e-2
    np.testing.assert_allclose(value, expected, rtol=rtol, atol=1e-5)


@pytest.mark.parametrize(
    "name,temperature",
    [
        ("kd", 0.05),
        ("kd", 1000.0),
        ("dkd", 0.05),
        ("dist", 1000.0),
        ("multilabel", 0.05),
        ("logit_mse", 1.0),
    ],
)
def test_distiller_under_mixed_float16(name, temperature):
    keras.mixed_precision.set_global_policy("mixed_float16")
    teacher, student = fresh_pair()
    x, y = make_data()
    assert student.outputs[0].dtype == "float16"
    distiller = kd_keras.Distiller(
        teacher, student, LOGIT_LOSSES[name](temperature)
    )
    distiller.compile("adam")
    history = distiller.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert np.isfinite(history.history["distillation_loss"]).all()
    assert all(np.isfinite(w).all() for w in student.get_weights())
    if name != "dist":
        # Updates went through the loss scaling (DIST at T = 1000 needs
        # more steps for the loss scale to come down, see above).
        assert int(distiller.optimizer.iterations) > 0


# --- Bad data caught before training ---------------------------------------


def distiller_for(loss=None, optimizer="adam"):
    teacher, student = fresh_pair()
    distiller = kd_keras.Distiller(teacher, student, loss)
    distiller.compile(optimizer)
    return distiller


@pytest.mark.parametrize(
    "make_x,message",
    [
        (
            lambda x, y: (x[:0], y[:0]),
            r"^x is empty \(0 samples\).*Received: x of shape \(0, 8\)",
        ),
        (
            lambda x, y: (
                tf.data.Dataset.from_tensor_slices((x[:0], y[:0])).batch(8),
            ),
            "^x is an empty tf.data.Dataset",
        ),
        (
            lambda x, y: (x[:, :5], y),
            r"^x has samples of shape \(5,\), but the inputs of the models "
            r"have shape \(8,\)",
        ),
        (
            lambda x, y: (x, y + 0.5),
            r"^y holds class indices that are not whole numbers \(e.g. "
            r"\[\d\.5",
        ),
        (
            lambda x, y: (x, np.eye(3)[y % 3]),
            r"^y has shape \(96, 3\): one-hot labels need 4 columns",
        ),
        (lambda x, y: (x, y[:50]), "'y' sizes: 50"),
        (
            lambda x, y: (x, y + 10),
            r"^Labels must be in \[0, 4\) for a model with 4 classes, or -1 "
            r"for an unlabelled sample. Received y from 10 to 13\.$",
        ),
        (
            lambda x, y: (x, y - 2.0),
            r"^Labels must be in \[0, 4\).*Received y from -2\.0 to 1\.0",
        ),
        (
            lambda x, y: (tf.constant(x), tf.constant(y + 10)),
            r"^Labels must be in \[0, 4\)",
        ),
    ],
)
def test_bad_data_refused_before_training(make_x, message):
    distiller = distiller_for()
    student_before = distiller.student.get_weights()
    x, y = make_data()
    with pytest.raises(ValueError, match=message):
        distiller.fit(*make_x(x, y), epochs=1, verbose=0)
    for b, a in zip(
        student_before, distiller.student.get_weights(), strict=True
    ):
        np.testing.assert_array_equal(a, b)


def test_bad_validation_labels_are_named():
    distiller = distiller_for()
    x, y = make_data()
    with pytest.raises(ValueError, match=r"^validation_data\[1\] has shape"):
        distiller.fit(x, y, validation_data=(x, np.eye(3)[y % 3]), verbose=0)


def test_string_labels():
    distiller = distiller_for()
    x, y = make_data()
    with pytest.raises(TypeError, match="y must hold numbers.*dtype <U"):
        distiller.fit(x, y.astype(str), verbose=0)


@pytest.mark.parametrize(
    "y",
    [
        lambda y: y.astype("float32"),
        lambda y: y[:, None],
        lambda y: np.eye(CLASSES)[y],
    ],
    ids=["float", "column", "one_hot"],
)
def test_accepted_label_forms_train_alike(y):
    """Whole float labels, a label column and one-hot rows are the same."""
    x, labels = make_data()
    # SGD: Adam's normalised steps would magnify rounding differences.
    reference = distiller_for(optimizer="sgd")
    reference.fit(x, labels, epochs=1, shuffle=False, verbose=0)
    distiller = distiller_for(optimizer="sgd")
    distiller.fit(x, y(labels), epochs=1, shuffle=False, verbose=0)
    for a, b in zip(
        distiller.student.get_weights(),
        reference.student.get_weights(),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_teacher_and_student_inputs_must_match():
    teacher = make_mlp(32, "teacher")
    inputs = keras.Input((FEATURES - 3,))
    student = keras.Model(inputs, keras.layers.Dense(CLASSES)(inputs))
    with pytest.raises(
        ValueError,
        match=r"teacher and student must take the same inputs.*"
        r"teacher inputs \[\(8,\)\], student inputs \[\(5,\)\]",
    ):
        kd_keras.Distiller(teacher, student)


def test_class_count_mismatch():
    teacher = make_mlp(32, "teacher")
    inputs = keras.Input((FEATURES,))
    student = keras.Model(inputs, keras.layers.Dense(CLASSES - 1)(inputs))
    with pytest.raises(
        ValueError, match=r"teacher output \(4,\), student output \(3,\)"
    ):
        kd_keras.Distiller(teacher, student)


@pytest.mark.parametrize(
    "loss",
    [None, kd_keras.losses.DIST(), kd_keras.losses.DKD(warmup=0)],
    ids=["kd", "dist", "dkd"],
)
def test_batch_size_one(loss):
    x, y = make_data(samples=8)
    distiller = distiller_for(loss)
    history = distiller.fit(x, y, batch_size=1, epochs=1, verbose=0)
    assert int(distiller.optimizer.iterations) == 8
    assert np.isfinite(history.history["loss"]).all()
    assert all(np.isfinite(w).all() for w in distiller.student.get_weights())
