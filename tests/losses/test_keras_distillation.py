"""keras.distillation's losses in kd_keras: values by hand, and the
Distiller running Keras' own and a user's own."""

import warnings

import keras
import numpy as np
import pytest
from conftest import CLASSES, make_data, make_mlp

import kd_keras
from kd_keras.losses import FeatureDistillation, LogitsDistillation

TEACHER = np.array([[5.0, 1.0, -2.0]], "float32")
STUDENT = np.array([[1.0, 2.0, 0.0]], "float32")
T = 4.0


def hinton(teacher, student, temperature):
    """T**2 * KL(softmax(t / T) || softmax(s / T)), batch mean, float64."""

    def softmax(z):
        z = np.asarray(z, np.float64) / temperature
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    p, q = softmax(teacher), softmax(student)
    return temperature**2 * np.mean(np.sum(p * np.log(p / q), -1))


@pytest.mark.parametrize(
    "loss",
    ["kl_divergence", "kld", keras.losses.kl_divergence],
    ids=["string", "alias", "function"],
)
def test_the_kl_default_is_hintons_loss(loss):
    value = LogitsDistillation(T, loss).compute_loss(TEACHER, STUDENT)
    assert hinton(TEACHER, STUDENT, T) == pytest.approx(3.506, abs=1e-3)
    assert float(value) == pytest.approx(hinton(TEACHER, STUDENT, T), 1e-5)


def test_keras_default_is_kl_of_the_softened_logits():
    # The defect kd_keras does not copy: kl_divergence clips its
    # arguments to [1e-7, 1] and compares the softened logits themselves.
    t = np.clip(TEACHER[0] / T, 1e-7, 1)
    s = np.clip(STUDENT[0] / T, 1e-7, 1)
    expected = np.sum(t * np.log(t / s))
    keras_value = keras.distillation.LogitsDistillation(T).compute_loss(
        TEACHER, STUDENT
    )
    assert float(keras_value) == pytest.approx(expected, 1e-5)
    assert expected == pytest.approx(1.213, abs=1e-3)


def test_nested_outputs_and_none_skip_one():
    loss = LogitsDistillation(T, ["kl_divergence", None])
    value = loss.compute_loss([TEACHER, TEACHER], [STUDENT, TEACHER])
    assert float(value) == pytest.approx(hinton(TEACHER, STUDENT, T), 1e-5)


def test_other_losses_read_the_softened_logits_as_keras_does():
    loss = LogitsDistillation(2.0, "mse")
    expected = np.mean((TEACHER / 2 - STUDENT / 2) ** 2)
    assert float(loss.compute_loss(TEACHER, STUDENT)) == pytest.approx(expected)


@pytest.mark.parametrize(
    "loss",
    [
        LogitsDistillation(2.5, ["kl_divergence", "mse"]),
        FeatureDistillation("mae", "dense", "dense_1"),
    ],
)
def test_round_trip(loss):
    copy = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(loss)
    )
    assert type(copy) is type(loss)
    assert copy.get_config() == loss.get_config()


def test_a_layer_of_a_nested_model_is_named_by_its_path():
    inner = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, name="hidden")], name="inner"
    )
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inner(inputs)))
    FeatureDistillation(
        teacher_layer_name="inner/hidden", student_layer_name="inner/hidden"
    ).validate_model_compatibility(model, model)
    with pytest.raises(ValueError, match="no layer named 'hiden'.*inner"):
        FeatureDistillation(
            teacher_layer_name="hiden"
        ).validate_model_compatibility(model, model)


def distillation_term(distiller, x):
    """The logged distillation loss on one batch."""
    distiller.compile(loss="sparse_categorical_crossentropy")
    logs = distiller.evaluate(
        x,
        np.zeros(len(x), "int64"),
        batch_size=len(x),
        return_dict=True,
        verbose=0,
    )
    return logs["distillation_loss"]


def test_keras_own_default_is_computed_as_hintons_loss_with_a_warning(
    teacher, student
):
    x, _ = make_data(samples=32)
    with pytest.warns(UserWarning, match="kd_keras computes Hinton's"):
        distiller = kd_keras.Distiller(
            teacher, student, keras.distillation.LogitsDistillation(T)
        )
    expected = hinton(teacher.predict(x, verbose=0), student(x), T)
    assert distillation_term(distiller, x) == pytest.approx(expected, 1e-4)


def test_keras_own_kl_instance_is_computed_as_keras_does(teacher, student):
    x, _ = make_data(samples=32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        distiller = kd_keras.Distiller(
            teacher,
            student,
            keras.distillation.LogitsDistillation(
                T, loss=keras.losses.KLDivergence()
            ),
        )
    expected = hinton(teacher.predict(x, verbose=0), student(x), T)
    assert distillation_term(distiller, x) == pytest.approx(expected, 1e-4)


class MeanAbsolute(keras.distillation.DistillationLoss):
    """A user's own loss: the mean absolute difference of the outputs."""

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        return keras.ops.mean(keras.ops.abs(teacher_outputs - student_outputs))


class TeacherMean(keras.distillation.DistillationLoss):
    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        return keras.ops.mean(teacher_outputs)


class PerSample(keras.distillation.DistillationLoss):
    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        return keras.ops.sum(teacher_outputs, axis=-1)


@pytest.mark.parametrize("cache", [False, True])
def test_a_users_own_loss_reads_the_outputs_and_is_cached(
    teacher, student, cache
):
    x, y = make_data(samples=32)
    distiller = kd_keras.Distiller(
        teacher, student, MeanAbsolute(), student_loss_weight=0.0, cache=cache
    )
    expected = np.mean(np.abs(teacher.predict(x, verbose=0) - student(x)))
    assert distillation_term(distiller, x) == pytest.approx(expected, 1e-5)
    distiller.fit(x, y, epochs=1, verbose=0)
    assert (distiller.teacher_cache_nbytes is not None) == cache


def test_a_softmax_teacher_is_read_as_it_returns_its_outputs(student):
    # The rows of a softmax output each sum to 1: their mean is 1 / classes.
    teacher = make_mlp(8, "softmax_teacher", activation="softmax")
    distiller = kd_keras.Distiller(teacher, student, TeacherMean())
    x, _ = make_data(samples=8)
    assert distillation_term(distiller, x) == pytest.approx(1 / CLASSES)


def test_a_loss_that_is_not_a_scalar_is_refused(teacher, student):
    distiller = kd_keras.Distiller(teacher, student, PerSample())
    with pytest.raises(ValueError, match="PerSample.compute_loss must return"):
        distillation_term(distiller, make_data(samples=8)[0])


def test_the_outputs_are_validated(teacher, student):
    class Refusing(MeanAbsolute):
        def validate_outputs(self, teacher_outputs, student_outputs):
            raise ValueError("incompatible outputs")

    distiller = kd_keras.Distiller(teacher, student, Refusing())
    with pytest.raises(ValueError, match="incompatible outputs"):
        distillation_term(distiller, make_data(samples=8)[0])


def test_feature_distillation_in_the_distiller(data):
    x, _ = data
    teacher, student = make_mlp(8, "t"), make_mlp(8, "s")
    layer = {m: m.layers[1].name for m in (teacher, student)}
    distiller = kd_keras.Distiller(
        teacher,
        student,
        FeatureDistillation("mse", layer[teacher], layer[student]),
        student_loss_weight=0.0,
    )

    def hidden(model):
        return keras.Model(model.inputs, model.layers[1].output)(x)

    expected = np.mean((hidden(teacher) - hidden(student)) ** 2)
    assert distillation_term(distiller, x[:96]) == pytest.approx(expected, 1e-5)
