"""`kd_keras.validation`: models and data checked before anything runs,
with errors that name the argument."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import make_data, make_mlp

import kd_keras
from kd_keras import validation


class CountingTeacher(keras.Model):
    """Wraps a teacher and counts the samples it is called on."""

    def __init__(self, teacher):
        super().__init__()
        self.teacher = teacher
        self.seen = keras.Variable(0, dtype="int32", trainable=False)

    def call(self, x, training=False):
        self.seen.assign_add(keras.ops.shape(keras.tree.flatten(x)[0])[0])
        return self.teacher(x, training=training)


def dict_model(name):
    inputs = {
        "a": keras.Input((8,), name="a"),
        "b": keras.Input((2,), name="b"),
    }
    joined = keras.layers.Concatenate()([inputs["a"], inputs["b"]])
    return keras.Model(inputs, keras.layers.Dense(4)(joined), name=name)


def compiled(teacher, student, **kwargs):
    distiller = kd_keras.Distiller(CountingTeacher(teacher), student, **kwargs)
    distiller.compile(optimizer="adam", metrics=["accuracy"])
    return distiller


@pytest.mark.parametrize("inputs", ["arrays", "dict"])
def test_x_and_y_of_different_lengths_are_refused_first(inputs):
    """With metrics compiled, Keras' build used to fail inside a graph
    ("Cannot reshape a tensor with 10 elements to shape [64]")."""
    x, y = make_data(samples=64)
    if inputs == "dict":
        x = {"a": x, "b": x[:, :2]}
        teacher, student = dict_model("teacher"), dict_model("student")
    else:
        teacher, student = make_mlp(16, "teacher"), make_mlp(8, "student")
    distiller = compiled(teacher, student)
    sizes = "64, 64" if inputs == "dict" else "64"
    with pytest.raises(
        ValueError,
        match=rf"^Data cardinality is ambiguous.*'x' sizes: {sizes}\n"
        r"'y' sizes: 10\n$",
    ):
        distiller.fit(x, y[:10], epochs=1, verbose=0)
    assert int(distiller.teacher.seen) == 0
    assert int(distiller.optimizer.iterations) == 0


def test_validation_data_of_different_lengths_is_named():
    x, y = make_data(samples=64)
    distiller = compiled(make_mlp(16, "teacher"), make_mlp(8, "student"))
    with pytest.raises(
        ValueError,
        match=r"'validation_data\[0\]' sizes: 64\n'validation_data\[1\]' "
        r"sizes: 20\n$",
    ):
        distiller.fit(x, y, validation_data=(x, y[:20]), verbose=0)
    assert int(distiller.teacher.seen) == 0


def test_sample_weights_of_another_length_are_refused():
    x, y = make_data(samples=64)
    distiller = compiled(make_mlp(16, "teacher"), make_mlp(8, "student"))
    with pytest.raises(ValueError, match=r"'sample_weight' sizes: 3\n$"):
        distiller.fit(x, y, sample_weight=np.ones(3), verbose=0)


def test_data_of_different_lengths_given_with_a_store(tmp_path):
    x, y = make_data(samples=64)
    teacher = make_mlp(16, "teacher")
    with pytest.raises(ValueError, match=r"'y' sizes: 10\n$"):
        kd_keras.TeacherStore.build(
            teacher, (x, y[:10]), tmp_path / "short", verbose=0
        )
    store = kd_keras.TeacherStore.build(
        teacher, (x, y), tmp_path / "store", verbose=0
    )
    distiller = kd_keras.Distiller(teacher, make_mlp(8, "student"), cache=store)
    distiller.compile(optimizer="adam", metrics=["accuracy"])
    with pytest.raises(ValueError, match=r"'y' sizes: 10\n$"):
        distiller.fit(x, y[:10], verbose=0)
    assert int(distiller.optimizer.iterations) == 0


# --- Models -------------------------------------------------------------


def test_models_are_checked_in_pairs():
    teacher, student = make_mlp(16, "teacher"), make_mlp(8, "student")
    assert validation.check_models(teacher, student) == (4,)
    with pytest.raises(TypeError, match="^student must be a keras.Model"):
        validation.check_models(teacher, "student.h5")
    with pytest.raises(ValueError, match="must be different models"):
        validation.check_models(teacher, teacher)
    wide = keras.Model(teacher.inputs, keras.layers.Dense(5)(teacher.inputs[0]))
    with pytest.raises(
        ValueError, match=r"teacher output \(4,\), student output \(5,\)"
    ):
        validation.check_models(teacher, wide)
    other = keras.Input((3,))
    narrow = keras.Model(other, keras.layers.Dense(4)(other))
    with pytest.raises(ValueError, match=r"student inputs \[\(3,\)\]"):
        validation.check_models(teacher, narrow)
    frozen = make_mlp(8, "frozen")
    frozen.trainable = False
    with pytest.raises(ValueError, match="'frozen' has no trainable weights"):
        validation.check_models(teacher, frozen)


def test_students_of_a_cohort():
    a, b = make_mlp(8, "a"), make_mlp(8, "b")
    validation.check_students([a, b])
    with pytest.raises(ValueError, match="at least 2"):
        validation.check_students([a])
    with pytest.raises(ValueError, match="different models"):
        validation.check_students([a, a])
    with pytest.raises(ValueError, match="distinct names"):
        validation.check_students([a, make_mlp(8, "a")])
    with pytest.raises(ValueError, match="'s' ends in a sigmoid"):
        validation.check_students([a, make_mlp(8, "s", activation="sigmoid")])


# --- Data ----------------------------------------------------------------


@pytest.mark.parametrize(
    "y, message",
    [
        (np.array([0, 1, 4]), r"in \[0, 4\).*Received y from 0 to 4\."),
        (np.array([0.5, 1.0]), "not whole numbers"),
        (np.eye(3), r"one-hot labels need 4 columns"),
        (np.array(["a", "b"]), "must hold numbers"),
    ],
)
def test_labels_must_fit_the_classes(y, message):
    error = TypeError if y.dtype.kind == "U" else ValueError
    with pytest.raises(error, match=message):
        validation.check_y("y", y, (4,))


def test_accepted_labels():
    validation.check_y("y", np.array([0, 3, -1]), (4,))  # -1: unlabelled
    validation.check_y("y", np.eye(4), (4,))
    validation.check_y("y", np.array([[0.3], [7.5]]), (1,))  # regression


def test_emptiness_of_arrays_and_datasets():
    with pytest.raises(ValueError, match=r"^x is empty \(0 samples\)"):
        validation.check_not_empty("x", np.zeros((0, 3)))
    empty = tf.data.Dataset.from_tensor_slices(np.zeros((0, 3))).batch(2)
    with pytest.raises(ValueError, match="empty tf.data.Dataset"):
        validation.check_not_empty("x", empty)
    validation.check_not_empty("x", np.zeros((1, 3)))


def test_a_model_fits_a_dataset():
    model = make_mlp(8, "student")
    x, _ = make_data()
    validation.check_fits(model, "student", x.shape[1:], 4)
    with pytest.raises(
        ValueError,
        match=r"^the dataset has samples of shape \(7,\), but the inputs of "
        r"the student have shape \(8,\)\.$",
    ):
        validation.check_fits(model, "student", (7,), 4)
    with pytest.raises(
        ValueError, match="^The student has 4 outputs, but the dataset has 6"
    ):
        validation.check_fits(model, "student", x.shape[1:], 6)


def test_sample_shapes_with_unknown_dimensions():
    validation.check_sample_shape("x", (5, 3), "the models", (None, 3))
    with pytest.raises(ValueError, match=r"\(5, 2\), but the inputs"):
        validation.check_sample_shape("x", (5, 2), "the models", (None, 3))


# --- Labels of a dataset ---------------------------------------------------


def batches(labels, batch_size=16):
    x, _ = make_data(samples=len(labels))
    return tf.data.Dataset.from_tensor_slices((x, labels)).batch(batch_size)


def bad_labels():
    """Labels of 64 samples, one out of range (12) in the third batch."""
    _, y = make_data(samples=64)
    y = y.astype("int32")
    y[37] = 12
    return y


@pytest.mark.parametrize("cache", [False, True])
def test_out_of_range_labels_in_a_dataset_are_reported(cache):
    """Keras' cross-entropy raised InvalidArgumentError from inside the
    graph ("Received a label value of 12 which is outside the valid
    range")."""
    distiller = kd_keras.Distiller(
        make_mlp(16, "teacher"), make_mlp(8, "student"), cache=cache
    )
    distiller.compile("adam", metrics=["accuracy"])
    with pytest.raises(
        ValueError,
        match=r"^Labels must be whole numbers in \[0, 4\) for a model with 4 "
        r"classes, or -1 for an unlabelled sample\. Received a batch of x "
        r"holding the label 12\.$",
    ):
        distiller.fit(batches(bad_labels()), epochs=1, verbose=0)


def test_out_of_range_labels_in_validation_and_evaluate_datasets():
    good = batches(make_data(samples=64)[1])
    distiller = kd_keras.Distiller(make_mlp(16, "teacher"), make_mlp(8, "s"))
    distiller.compile("adam", metrics=["accuracy"])
    with pytest.raises(ValueError, match="a batch of validation_data hold"):
        distiller.fit(
            good, validation_data=batches(bad_labels()), epochs=1, verbose=0
        )
    with pytest.raises(ValueError, match="a batch of x holding the label 12"):
        distiller.evaluate(batches(bad_labels()), verbose=0)


def test_unlabelled_and_float_labels_in_a_dataset_pass():
    _, y = make_data(samples=64)
    y = y.astype("float32")
    y[:20] = -1
    distiller = kd_keras.Distiller(make_mlp(16, "teacher"), make_mlp(8, "s"))
    distiller.compile("adam", metrics=["accuracy"])
    distiller.fit(batches(y), epochs=1, verbose=0)
    y[3] = 1.5
    y[40] = -2.0
    with pytest.raises(ValueError, match="holding the label 1.5"):
        distiller.fit(batches(y), epochs=1, verbose=0)
    y[3] = 1.0
    with pytest.raises(ValueError, match="holding the label -2"):
        distiller.fit(batches(y), epochs=1, verbose=0)


def test_auto_says_a_dataset_runs_the_teacher_online(capsys):
    distiller = kd_keras.Distiller(make_mlp(16, "teacher"), make_mlp(8, "s"))
    distiller.compile("adam")
    distiller.fit(batches(make_data(samples=32)[1]), epochs=1, verbose=2)
    assert (
        "the teacher runs at every step; cache=True" in capsys.readouterr().out
    )
    assert distiller.teacher_cache_nbytes is None
