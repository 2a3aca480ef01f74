"""Distillation chains: born-again generations, teacher assistants, errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import CLASSES, FEATURES, make_mlp
from references import np_kd

import kd_keras

FIT = {"epochs": 1, "batch_size": 32, "verbose": 0}


class RecordStudent(keras.callbacks.Callback):
    """Keeps each generation's weights as its training ends."""

    def __init__(self):
        super().__init__()
        self.weights = []

    def on_train_end(self, logs=None):
        self.weights.append(self.model.student.get_weights())


def variable_ids(model):
    return {id(v) for v in model.weights}


def test_born_again_two_generations(teacher, student, data):
    x, y = data
    template = [w.copy() for w in student.get_weights()]
    teacher_before = [w.copy() for w in teacher.get_weights()]
    record = RecordStudent()
    students, histories = kd_keras.born_again(
        teacher,
        student,
        2,
        x,
        y,
        compile_kwargs={"optimizer": keras.optimizers.Adam(0.01)},
        fit_kwargs={**FIT, "callbacks": [record]},
        distiller_kwargs={"alpha": 0.0, "temperature": 2.0},
    )
    first, second = students
    assert len(students) == len(histories) == 2
    assert len({id(student), id(first), id(second)}) == 3
    assert [first.name, second.name] == [
        "student_generation_1",
        "student_generation_2",
    ]
    assert not variable_ids(first) & variable_ids(second)
    assert not variable_ids(student) & (
        variable_ids(first) | variable_ids(second)
    )
    # Generation 1 was taught by the teacher, generation 2 by generation 1.
    distillers = [history.model for history in histories]
    assert distillers[0].teacher is teacher and distillers[0].student is first
    assert distillers[1].teacher is first and distillers[1].student is second
    assert all(d.alpha == 0.0 and d.temperature == 2.0 for d in distillers)
    logs = distillers[1].evaluate(
        x, y, batch_size=len(x), verbose=0, return_dict=True
    )
    np.testing.assert_allclose(
        logs["distillation_loss"],
        np_kd(
            first.predict(x, verbose=0), second.predict(x, verbose=0), 2.0
        ).mean(),
        rtol=1e-4,
    )
    # Teaching generation 2 left generation 1 as it was trained.
    for kept, now in zip(record.weights[0], first.get_weights(), strict=True):
        np.testing.assert_array_equal(kept, now)
    for old, new in zip(template, student.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    for old, new in zip(teacher_before, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    assert first.trainable and second.trainable
    # Each generation has an optimizer of its own, from the template.
    optimizers = [d.optimizer for d in distillers]
    assert optimizers[0] is not optimizers[1]
    assert all(np.isclose(float(o.learning_rate), 0.01) for o in optimizers)


def test_born_again_copies_nested_models(teacher, data):
    x, y = data
    inputs = keras.Input((FEATURES,))
    backbone = keras.Sequential(
        [keras.Input((FEATURES,)), keras.layers.Dense(8, activation="relu")],
        name="backbone",
    )
    student = keras.Model(
        inputs, keras.layers.Dense(CLASSES)(backbone(inputs)), name="nested"
    )
    students, _ = kd_keras.born_again(teacher, student, 2, x, y, fit_kwargs=FIT)
    assert not variable_ids(students[0]) & variable_ids(students[1])
    assert not variable_ids(student) & variable_ids(students[0])


def test_teacher_assistant_chain_on_a_dataset(teacher, data):
    x, y = data
    assistant, student = make_mlp(12, "assistant"), make_mlp(4, "small")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    students, histories = kd_keras.teacher_assistant_chain(
        teacher,
        [assistant],
        student,
        dataset,
        compile_kwargs={"optimizer": "adam", "metrics": ["accuracy"]},
        fit_kwargs={"epochs": 1, "verbose": 0},
    )
    assert students == [assistant, student]
    assert histories[0].model.teacher is teacher
    assert histories[1].model.teacher is assistant
    assert histories[1].model.student is student
    assert "accuracy" in histories[1].history


def test_distill_chain_without_labels(teacher, data):
    x, _ = data
    chain = [make_mlp(8, "a"), make_mlp(4, "b")]
    _, histories = kd_keras.distill_chain(
        teacher, chain, x, compile_kwargs={"optimizer": "sgd"}, fit_kwargs=FIT
    )
    for history in histories:
        np.testing.assert_allclose(
            history.history["loss"], history.history["distillation_loss"]
        )


# Bad input: raised before anything is trained.


@pytest.mark.parametrize(
    "generations,error", [(0, ValueError), (1.5, TypeError), (True, TypeError)]
)
def test_bad_generations(teacher, student, data, generations, error):
    x, y = data
    with pytest.raises(error, match="generations"):
        kd_keras.born_again(teacher, student, generations, x, y)


def test_bad_students(teacher, student, data):
    x, y = data
    with pytest.raises(ValueError, match="students must list at least 1"):
        kd_keras.distill_chain(teacher, [], x, y)
    with pytest.raises(TypeError, match="students must be a list"):
        kd_keras.distill_chain(teacher, student, x, y)
    with pytest.raises(TypeError, match=r"students\[1\] must be a keras"):
        kd_keras.distill_chain(teacher, [student, "b"], x, y)
    with pytest.raises(ValueError, match="must be different models"):
        kd_keras.distill_chain(teacher, [student, student], x, y)
    with pytest.raises(ValueError, match="must be different models"):
        kd_keras.distill_chain(teacher, [student, teacher], x, y)
    with pytest.raises(TypeError, match="assistants must be a list"):
        kd_keras.teacher_assistant_chain(teacher, student, student, x, y)
    with pytest.raises(TypeError, match=r"assistants\[0\] must be a keras"):
        kd_keras.teacher_assistant_chain(teacher, ["a"], student, x, y)


def test_mismatch_late_in_the_chain_fails_before_training(teacher, data):
    x, y = data
    first = make_mlp(8, "first")
    before = [w.copy() for w in first.get_weights()]
    inputs = keras.Input((FEATURES,))
    wider = keras.Model(inputs, keras.layers.Dense(CLASSES + 1)(inputs))
    with pytest.raises(ValueError, match="same shape"):
        kd_keras.distill_chain(teacher, [first, wider], x, y, fit_kwargs=FIT)
    for old, new in zip(before, first.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    assert first.trainable


def test_bad_keyword_dicts_and_data(teacher, student, data):
    x, y = data
    with pytest.raises(TypeError, match="compile_kwargs must be a dict"):
        kd_keras.distill_chain(teacher, [student], x, y, compile_kwargs="adam")
    with pytest.raises(TypeError, match="fit_kwargs must be a dict"):
        kd_keras.distill_chain(teacher, [student], x, y, fit_kwargs=[1])
    with pytest.raises(TypeError, match="x is an iterator"):
        kd_keras.distill_chain(teacher, [student], iter([(x, y)]))
