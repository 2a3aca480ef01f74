"""Shared fixtures: tiny synthetic data and tiny models, seeded."""

import os
import subprocess
import sys
import tempfile
import textwrap

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import kd_keras  # noqa: E402

# Two logical CPUs so MirroredStrategy can be tested on one machine; this
# must run before TensorFlow initialises its devices.
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration()] * 2,
)

FEATURES, CLASSES, SAMPLES = 8, 4, 96


def make_data(seed=0, samples=SAMPLES):
    """Separable-ish synthetic classification data."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, FEATURES)).astype("float32")
    w = rng.normal(size=(FEATURES, CLASSES))
    y = np.argmax(x @ w, axis=-1).astype("int64")
    return x, y


def make_mlp(units, name, activation=None):
    inputs = keras.Input((FEATURES,))
    h = keras.layers.Dense(units, activation="relu")(inputs)
    outputs = keras.layers.Dense(CLASSES, activation=activation)(h)
    return keras.Model(inputs, outputs, name=name)


def np_mlp_gradients(weights, x, output_gradient):
    """Gradients of `make_mlp`'s weights, by hand (float64 backprop).

    Args:
        weights: `[kernel_1, bias_1, kernel_2, bias_2]` of the MLP.
        x: The inputs.
        output_gradient: The loss's gradient with respect to the outputs
            (logits), one row per sample.
    """
    w1, b1, w2, _ = (np.asarray(w, np.float64) for w in weights)
    x = np.asarray(x, np.float64)
    pre = x @ w1 + b1
    hidden_gradient = output_gradient @ w2.T * (pre > 0)
    return [
        x.T @ hidden_gradient,
        hidden_gradient.sum(0),
        np.maximum(pre, 0).T @ output_gradient,
        output_gradient.sum(0),
    ]


def assert_one_sgd_step(before, after, x, output_gradient, learning_rate):
    """`after` is `before` moved by one SGD step down the hand-derived
    gradient of `make_mlp`'s weights (`np_mlp_gradients`)."""
    gradients = np_mlp_gradients(before, x, output_gradient)
    for old, gradient, new in zip(before, gradients, after, strict=True):
        np.testing.assert_allclose(
            old - learning_rate * gradient, new, atol=1e-6
        )
        assert not np.array_equal(new, old)


class CountingDistiller(kd_keras.Distiller):
    """Counts the traces of its train step."""

    traces = 0

    def train_step(self, data):
        # Python code in a compiled step runs only while tracing.
        CountingDistiller.traces += 1
        return super().train_step(data)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="session")
def mirrored():
    """One MirroredStrategy over the two logical CPUs for the whole run.

    Strategies created one after another in a process reuse collective
    instance keys, and a second one fails with "Shape mismatch in the
    collective instance"; a program uses one strategy.
    """
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    assert len(devices) == 2
    return tf.distribute.MirroredStrategy(devices)


@pytest.fixture
def data():
    return make_data()


@pytest.fixture(scope="session")
def trained_teacher():
    keras.utils.set_random_seed(0)
    teacher = make_mlp(32, "teacher")
    teacher.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    x, y = make_data()
    teacher.fit(x, y, epochs=20, verbose=0)
    return teacher


@pytest.fixture
def teacher(trained_teacher):
    """A fresh copy of the trained teacher for each test."""
    copy = keras.models.clone_model(trained_teacher)
    copy.set_weights(trained_teacher.get_weights())
    return copy


@pytest.fixture
def student():
    return make_mlp(16, "student")


class PlainKeras:
    """A Python process that never imports kd_keras, as a user's would be:
    it loads model files with `keras.models.load_model` and predicts.

    Started once per test process (loading TensorFlow takes seconds) and
    asked once per file, through its standard input.
    """

    PROGRAM = textwrap.dedent("""
        import sys
        import numpy as np
        import keras
        for line in sys.stdin:
            model_path, x_path, out_path = line.rstrip("\\n").split("\\t")
            model = keras.models.load_model(model_path)
            np.save(out_path, model.predict(np.load(x_path), verbose=0))
            assert "kd_keras" not in sys.modules
            print(model.count_params(), flush=True)
    """)

    def __init__(self):
        self.errors = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(
            [sys.executable, "-c", self.PROGRAM],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            text=True,
        )

    def predict(self, path, x, folder):
        """`(parameters, outputs)` of the model file `path` on `x`."""
        np.save(folder / "x.npy", x)
        out = folder / "out.npy"
        self.process.stdin.write(f"{path}\t{folder / 'x.npy'}\t{out}\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            self.errors.seek(0)
            raise AssertionError(
                f"Keras could not load {path}:\n" + (self.errors.read()[-3000:])
            )
        return int(answer), np.load(out)

    def close(self):
        self.process.stdin.close()
        self.process.wait()
        self.errors.close()


@pytest.fixture(scope="session")
def plain_keras():
    keras_process = PlainKeras()
    yield keras_process
    keras_process.close()


def assert_reloads_without_kd_keras(plain_keras, path, model, x, folder):
    """`path` loads with plain Keras in a process that never imported
    kd_keras, equal to `model`: its parameters and its outputs on `x`."""
    parameters, outputs = plain_keras.predict(path, x, folder)
    assert parameters == model.count_params()
    np.testing.assert_array_equal(outputs, model.predict(x, verbose=0))


def pytest_terminal_summary(terminalreporter):
    """Prints the durations tests recorded (`record_property("seconds")`)."""
    timed = [
        (report.nodeid, dict(report.user_properties)["seconds"])
        for report in terminalreporter.getreports("passed")
        if "seconds" in dict(report.user_properties)
    ]
    if timed:
        terminalreporter.section("measured durations")
        for nodeid, seconds in timed:
            terminalreporter.write_line(f"{seconds:7.1f} s  {nodeid}")


def digit_images(samples, seed=0):
    """`(images, labels)`: scikit-learn's 8x8 digits as uint8 images."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(digits.target), samples, replace=False)
    images = (digits.images[chosen] * 255 / 16).round().astype("uint8")
    return images, digits.target[chosen]


def augmented_mobilenet(name, classes=CLASSES):
    """A MobileNetV3Small from scratch behind a random flip, as Keras users
    build them: the Application is a nested model inside the returned
    one, named "MobileNetV3Small"."""
    inputs = keras.Input((32, 32, 3), name="image")
    flipped = keras.Sequential(
        [keras.layers.RandomFlip("horizontal", name="flip")], name="augment"
    )(inputs)
    outputs = keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3),
        weights=None,
        classes=classes,
        classifier_activation=None,
    )(flipped)
    return keras.Model(inputs, outputs, name=name)


# Keras' own keras.distillation tests (tests/keras_compat/test_keras_*.py)
# run against kd_keras. Two of them cannot pass: they read keras.distillation.
# Distiller's private `_teacher_feature_extractor` and
# `_student_feature_extractor` (the models Keras builds to read named
# layers), which kd_keras does not have (`kd_keras.views.ModelView` reads
# them). They are expected to fail, strictly: if one passes, the suite says so.
KERAS_PRIVATE_ATTRIBUTES = (
    "test_feature_distillation_end_to_end",
    "test_multi_distillation_loss_distillation_end_to_end",
)


def pytest_collection_modifyitems(items):
    for item in items:
        if item.name in KERAS_PRIVATE_ATTRIBUTES and "keras_compat" in str(
            item.path
        ):
            item.add_marker(
                pytest.mark.xfail(
                    reason="reads keras.distillation.Distiller's private "
                    "_teacher_feature_extractor",
                    raises=AttributeError,
                    strict=True,
                )
            )
