"""Function matching: shared augmented batches, mixup, no labels, saving."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import CLASSES
from references import np_kd

import kd_keras
from kd_keras import function_matching

SHAPE = (4, 4, 1)


def image_data(seed=0, samples=48):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(samples, *SHAPE)).astype("float32")
    y = rng.integers(0, CLASSES, size=samples)
    return x, y


def image_model(units, name):
    inputs = keras.Input(SHAPE)
    h = keras.layers.Dense(units, activation="relu")(
        keras.layers.Flatten()(inputs)
    )
    return keras.Model(inputs, keras.layers.Dense(CLASSES)(h), name=name)


def copy_of(model):
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def predict(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def test_loss_is_kd_on_the_shared_mixed_batch():
    """Teacher and student both see mixup(augment(x)); labels are unused."""
    x, y = image_data()
    teacher, student = image_model(16, "teacher"), image_model(8, "student")
    initial = copy_of(student)
    distiller = kd_keras.FunctionMatching(
        teacher,
        student,
        augmentation=keras.layers.Rescaling(2.0, offset=1.0),
        temperature=2.0,
        seed=3,
    )
    distiller.compile(keras.optimizers.SGD(0.1))
    state = distiller.seed_generator.state.numpy().copy()
    history = distiller.fit(
        x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0
    )
    distiller.seed_generator.state.assign(state)  # replay the step's draw
    mixed, labels = distiller.prepare_batch(keras.ops.convert_to_tensor(x), y)
    mixed = keras.ops.convert_to_numpy(mixed)
    assert labels is None
    # mixed = lam * a + (1 - lam) * a_next, a = 2x + 1, 1/2 <= lam <= 1.
    a = 2.0 * x + 1.0
    neighbour = np.roll(a, 1, axis=0)
    lam = np.sum((mixed - neighbour) * (a - neighbour)) / np.sum(
        (a - neighbour) ** 2
    )
    assert 0.5 <= lam <= 1.0
    np.testing.assert_allclose(
        mixed, lam * a + (1 - lam) * neighbour, rtol=1e-5, atol=1e-6
    )
    expected = np_kd(predict(teacher, mixed), predict(initial, mixed), 2.0)
    np.testing.assert_allclose(
        history.history["loss"][0], expected.mean(), rtol=1e-4
    )
    np.testing.assert_allclose(
        history.history["distillation_loss"][0], expected.mean(), rtol=1e-4
    )


def test_larger_beta_share_inverts_the_beta_cdf():
    u = np.linspace(0.0, 0.999, 7).astype("float32")
    # Beta(1/2, 1/2) has the CDF (2 / pi) asin(sqrt(t)): max(L, 1 - L) is
    # the t with (4 / pi) asin(sqrt(t)) - 1 = u.
    half = function_matching.larger_beta_share(0.5, u)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(half),
        np.sin(np.pi / 4 * (1 + u.astype("float64"))) ** 2,
        atol=1e-6,
    )
    # Beta(1, 1) is uniform: max(L, 1 - L) is uniform on [1/2, 1].
    one = function_matching.larger_beta_share(1.0, u)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(one), 0.5 + 0.5 * u, atol=1e-6
    )


def test_mixup_coefficient_follows_the_beta_distribution():
    teacher, student = image_model(16, "teacher"), image_model(8, "student")
    distiller = kd_keras.FunctionMatching(
        teacher, student, mixup_alpha=0.5, seed=0
    )
    # With x = (0, 1): mixed[1] = lam * 1 + (1 - lam) * 0 = lam.
    x = tf.constant([[0.0], [1.0]])
    mixup = tf.function(distiller.mixup)
    draws = np.array([float(mixup(x)[1, 0]) for _ in range(400)])
    assert draws.min() >= 0.5 and draws.max() <= 1.0
    # max(L, 1 - L), L ~ Beta(1/2, 1/2): CDF (4 / pi) asin(sqrt(t)) - 1.
    cdf = 4 / np.pi * np.arcsin(np.sqrt(np.sort(draws))) - 1
    ecdf = np.arange(1, len(draws) + 1) / len(draws)
    assert np.max(np.abs(ecdf - cdf)) < 1.63 / np.sqrt(len(draws))  # KS 1%


def test_no_mixup_no_augmentation_is_the_identity():
    x, y = image_data()
    distiller = kd_keras.FunctionMatching(
        image_model(16, "teacher"), image_model(8, "student"), mixup_alpha=0
    )
    mixed, labels = distiller.prepare_batch(x, y)
    assert labels is None
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(mixed), x)


def test_integer_images_are_mixed_as_floats():
    x = np.arange(2 * 16, dtype="uint8").reshape(2, *SHAPE)
    distiller = kd_keras.FunctionMatching(
        image_model(16, "teacher"), image_model(8, "student"), seed=1
    )
    mixed = distiller.mixup(x)
    assert keras.backend.standardize_dtype(mixed.dtype) == "float32"


def train(with_labels, jit_compile=False, epochs=1):
    keras.utils.set_random_seed(0)
    x, y = image_data()
    teacher, student = image_model(16, "teacher"), image_model(8, "student")
    distiller = kd_keras.FunctionMatching(
        teacher,
        student,
        augmentation=keras.layers.RandomFlip(),
        mixup_alpha=1.0,
    )
    distiller.compile("adam", jit_compile=jit_compile)
    initial = student.get_weights()
    args = (x, y) if with_labels else (x,)
    history = distiller.fit(
        *args, batch_size=16, epochs=epochs, shuffle=False, verbose=0
    )
    return history.history, initial, student.get_weights()


def test_labels_are_ignored():
    logs_with, _, with_labels = train(with_labels=True)
    logs_without, _, without = train(with_labels=False)
    assert logs_with["loss"] == logs_without["loss"]
    for a, b in zip(with_labels, without, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(
        logs_with["loss"], logs_with["distillation_loss"]
    )


def test_jit_compile():
    """XLA draws other random numbers than TensorFlow's kernels (same
    seeds, another generator), so the runs are compared by their course."""
    graph_logs, _, _ = train(with_labels=True, epochs=3)
    xla_logs, initial, xla = train(with_labels=True, jit_compile=True, epochs=3)
    assert np.all(np.isfinite(xla_logs["loss"]))
    assert xla_logs["loss"][-1] < xla_logs["loss"][0]
    np.testing.assert_allclose(graph_logs["loss"], xla_logs["loss"], rtol=0.5)
    assert any(
        not np.array_equal(a, b) for a, b in zip(initial, xla, strict=True)
    )


def test_evaluation_uses_the_inputs_as_they_are():
    x, y = image_data()
    teacher, student = image_model(16, "teacher"), image_model(8, "student")
    distiller = kd_keras.FunctionMatching(
        teacher, student, augmentation=keras.layers.Rescaling(0.0)
    )
    distiller.compile("adam", metrics=["accuracy"])
    logs = distiller.evaluate(
        x, y, batch_size=len(x), verbose=0, return_dict=True
    )
    np.testing.assert_allclose(
        logs["distillation_loss"],
        np_kd(predict(teacher, x), predict(student, x), 1.0).mean(),
        rtol=1e-4,
    )
    assert "accuracy" in logs


def test_config_and_file_round_trip(tmp_path):
    x, y = image_data()
    distiller = kd_keras.FunctionMatching(
        image_model(16, "teacher"),
        image_model(8, "student"),
        augmentation=keras.Sequential(
            [keras.layers.RandomFlip("horizontal", seed=5)]
        ),
        mixup_alpha=0.4,
        temperature=2.0,
        seed=7,
    )
    restored = kd_keras.FunctionMatching.from_config(distiller.get_config())
    assert (restored.mixup_alpha, restored.seed) == (0.4, 7)
    assert restored.temperature == 2.0
    assert isinstance(restored.augmentation, keras.Sequential)
    assert restored.augmentation.get_config() == (
        distiller.augmentation.get_config()
    )
    distiller.compile("adam", metrics=["accuracy"])
    distiller.fit(x, y, epochs=1, verbose=0)
    distiller.save(tmp_path / "fm.keras")
    loaded = keras.models.load_model(tmp_path / "fm.keras")
    assert isinstance(loaded, kd_keras.FunctionMatching)
    assert loaded.mixup_alpha == 0.4 and loaded.temperature == 2.0
    assert loaded.evaluate(x, y, verbose=0, return_dict=True) == pytest.approx(
        distiller.evaluate(x, y, verbose=0, return_dict=True)
    )
    loaded.fit(x, epochs=1, verbose=0)


def test_own_distillation_loss_keeps_its_temperature():
    teacher, student = image_model(16, "teacher"), image_model(8, "student")
    distiller = kd_keras.FunctionMatching(
        teacher, student, distillation_loss=kd_keras.losses.KD(3.0)
    )
    assert distiller.temperature == 3.0
    with pytest.raises(ValueError, match="conflicts"):
        kd_keras.FunctionMatching(
            teacher,
            student,
            distillation_loss=kd_keras.losses.KD(3.0),
            temperature=2.0,
        )


# Bad input: each error names the argument.


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        ({"mixup_alpha": -1.0}, ValueError, "mixup_alpha must be >= 0"),
        ({"mixup_alpha": "1"}, TypeError, "mixup_alpha must be a number"),
        ({"temperature": 0.0}, ValueError, "temperature must be > 0"),
        ({"augmentation": "flip"}, TypeError, "augmentation must be"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    teacher, student = image_model(16, "teacher"), image_model(8, "student")
    with pytest.raises(error, match=message):
        kd_keras.FunctionMatching(teacher, student, **kwargs)


def test_the_teacher_is_never_cached():
    x, y = image_data()
    matcher = kd_keras.FunctionMatching(
        image_model(16, "teacher"), image_model(8, "student"), seed=0
    )
    matcher.compile("sgd")
    matcher.fit(x, y, epochs=1, verbose=0)
    assert matcher.teacher_cache_nbytes is None
    forced = kd_keras.FunctionMatching(
        image_model(16, "teacher"), image_model(8, "student"), cache=True
    )
    forced.compile("sgd")
    with pytest.raises(ValueError, match="cannot be cached"):
        forced.fit(x, y, epochs=1, verbose=0)
