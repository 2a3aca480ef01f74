"""`kd_keras.validation`: models and data checked before anything runs,
with errors that name the argument."""

import keras
import numpy as np
import pytest
from conftest import make_data, make_mlp

import kd_keras


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
