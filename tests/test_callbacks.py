"""Schedules (values, effect on training, errors) and StudentCheckpoint."""

import doctest
import math

import keras
import numpy as np
import pytest
from conftest import CountingDistiller, assert_reloads_without_kd_keras
from references import expected_loss

import kd_keras
from kd_keras import callbacks, losses
from kd_keras.hyperparameters import Hyperparameter, check_positive


def values_at(schedule, epochs):
    return [schedule(epoch) for epoch in epochs]


def test_constant():
    assert values_at(callbacks.constant(2.5), [0, 1, 100]) == [2.5] * 3


def test_linear_reaches_end_at_the_last_epoch_and_stays():
    schedule = callbacks.linear(8.0, 1.0, epochs=8)
    # One unit less per epoch: 8 at epoch 0, 1 at epoch 7.
    assert values_at(schedule, range(10)) == [8, 7, 6, 5, 4, 3, 2, 1, 1, 1]
    increasing = callbacks.linear(0.1, 0.5, epochs=5)
    np.testing.assert_allclose(
        values_at(increasing, [0, 1, 2, 4, 6]), [0.1, 0.2, 0.3, 0.5, 0.5]
    )


def test_cosine_is_a_half_cosine():
    schedule = callbacks.cosine(8.0, 2.0, epochs=5)
    # Fractions 0, 1/4, 1/2, 3/4, 1 of a half period: cos = 1, r, 0, -r, -1.
    r = math.sqrt(0.5)
    expected = [8.0, 2 + 3 * (1 + r), 5.0, 2 + 3 * (1 - r), 2.0, 2.0, 2.0]
    np.testing.assert_allclose(values_at(schedule, range(7)), expected)


def test_step_changes_at_the_boundary_epoch():
    schedule = callbacks.step([0.5, 0.2, 0.1], [2, 5])
    assert values_at(schedule, range(7)) == [0.5, 0.5, 0.2, 0.2, 0.2, 0.1, 0.1]
    assert values_at(callbacks.step([3.0], []), [0, 9]) == [3.0, 3.0]


@pytest.mark.parametrize(
    "make,error,message",
    [
        (lambda: callbacks.constant("4"), TypeError, "value='4'"),
        (lambda: callbacks.linear(None, 1, 3), TypeError, "start=None"),
        (lambda: callbacks.linear(1, True, 3), TypeError, "end=True"),
        (lambda: callbacks.linear(1, 2, 2.5), TypeError, "epochs=2.5"),
        (lambda: callbacks.linear(1, 2, 1), ValueError, "epochs=1"),
        (lambda: callbacks.cosine(1, 2, 0), ValueError, "epochs=0"),
        (lambda: callbacks.cosine(1, "2", 3), TypeError, "end='2'"),
        (lambda: callbacks.step(0.5, [1]), TypeError, "values=0.5"),
        (lambda: callbacks.step([0.5, 0.1], 1), TypeError, "boundaries=1"),
        (lambda: callbacks.step([0.5, "a"], [1]), TypeError, "values[1]="),
        (lambda: callbacks.step([1, 2], [1.5]), TypeError, "boundaries[0]="),
        (lambda: callbacks.step([1, 2], [0]), ValueError, "boundaries[0]=0"),
        (lambda: callbacks.step([1, 2], [1, 2]), ValueError, "one more"),
        (lambda: callbacks.step([1, 2, 3], [3, 3]), ValueError, "increasing"),
    ],
)
def test_schedule_argument_errors(make, error, message):
    with pytest.raises(error) as info:
        make()
    assert message in str(info.value)


@pytest.mark.parametrize(
    "schedule",
    [
        callbacks.constant(1.0),
        callbacks.linear(1, 2, 3),
        callbacks.cosine(1, 2, 3),
        callbacks.step([1, 2], [1]),
    ],
)
def test_schedules_refuse_bad_epochs(schedule):
    with pytest.raises(ValueError, match="epoch=-1"):
        schedule(-1)
    with pytest.raises(TypeError, match="epoch=1.0"):
        schedule(1.0)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_schedules_change_the_compiled_step_without_retracing(
    teacher, student, data, jit_compile
):
    x, y = data
    CountingDistiller.traces = 0
    distiller = CountingDistiller(teacher, student)
    # No learning: the student stays fixed, so each epoch's losses depend
    # on that epoch's temperature and alpha only. (Compiled metrics are
    # left out: they create variables in the first trace, which makes
    # TensorFlow trace twice whatever the schedules.)
    distiller.compile(
        keras.optimizers.SGD(learning_rate=0.0), jit_compile=jit_compile
    )
    traces = []
    count_traces = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: traces.append(CountingDistiller.traces)
    )
    temperatures, alphas = [4.0, 2.5, 1.0], [0.1, 0.6, 0.6]
    history = distiller.fit(
        x,
        y,
        epochs=3,
        batch_size=32,
        verbose=0,
        callbacks=[
            callbacks.TemperatureSchedule(callbacks.linear(4.0, 1.0, 3)),
            callbacks.AlphaSchedule(callbacks.step([0.1, 0.6], [1])),
            count_traces,
        ],
    ).history
    assert traces == [1, 1, 1]
    assert history["temperature"] == temperatures
    assert history["alpha"] == alphas
    for epoch, (temperature, alpha) in enumerate(
        zip(temperatures, alphas, strict=True)
    ):
        total, hard, soft = expected_loss(
            teacher, student, x, y, alpha, temperature
        )
        np.testing.assert_allclose(
            history["distillation_loss"][epoch], soft, rtol=1e-5
        )
        np.testing.assert_allclose(
            history["student_loss"][epoch], hard, rtol=1e-5
        )
        np.testing.assert_allclose(history["loss"][epoch], total, rtol=1e-5)
    assert distiller.temperature == 1.0 and distiller.alpha == 0.6
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(distiller.distillation_loss._temperature),
        1.0,
    )


def test_a_user_function_is_a_schedule(teacher, student, data):
    x, y = data
    distiller = kd_keras.Distiller(teacher, student)
    distiller.compile("adam")
    history = distiller.fit(
        x,
        y,
        epochs=3,
        verbose=0,
        callbacks=[callbacks.TemperatureSchedule(lambda epoch: 2.0**epoch)],
    )
    assert history.history["temperature"] == [1.0, 2.0, 4.0]


def test_hyperparameter_schedule_of_a_subclass_hyperparameter(
    teacher, student, data
):
    class Scaled(kd_keras.Distiller):
        scale = Hyperparameter(check_positive)

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.scale = 1.0

    x, y = data
    distiller = Scaled(teacher, student)
    distiller.compile("adam")
    schedule = callbacks.HyperparameterSchedule(
        "scale", callbacks.step([1.0, 3.0], [1])
    )
    history = distiller.fit(x, y, epochs=2, verbose=0, callbacks=[schedule])
    assert history.history["scale"] == [1.0, 3.0]
    assert keras.ops.convert_to_numpy(distiller._scale) == 3.0


def test_verbose_prints_the_value(teacher, student, data, capsys):
    x, y = data
    distiller = kd_keras.Distiller(teacher, student)
    distiller.compile("adam")
    schedule = callbacks.AlphaSchedule(callbacks.constant(0.25), verbose=1)
    distiller.fit(x, y, epochs=2, verbose=0, callbacks=[schedule])
    out = capsys.readouterr().out
    assert "Epoch 1: AlphaSchedule setting alpha to 0.25." in out
    assert "Epoch 2: AlphaSchedule setting alpha to 0.25." in out


def fit_with(model, schedule, epochs=1):
    x, y = np.zeros((4, 8), "float32"), np.zeros((4,), "int64")
    return model.fit(x, y, epochs=epochs, verbose=0, callbacks=[schedule])


def test_a_model_without_the_attribute_is_refused(student):
    student.compile("adam", "sparse_categorical_crossentropy")
    before = [w.copy() for w in student.get_weights()]
    with pytest.raises(ValueError, match="has no attribute 'temperature'"):
        fit_with(student, callbacks.TemperatureSchedule(callbacks.constant(2)))
    # Refused before training.
    for old, new in zip(before, student.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


def test_a_loss_without_temperature_is_refused(teacher, student):
    distiller = kd_keras.Distiller(
        teacher, student, distillation_loss=losses.LogitMSE()
    )
    distiller.compile("adam")
    with pytest.raises(
        ValueError, match="temperature=None. Its distillation loss"
    ):
        fit_with(
            distiller, callbacks.TemperatureSchedule(callbacks.constant(2))
        )


def test_a_plain_attribute_is_refused(teacher, student):
    distiller = kd_keras.Distiller(teacher, student)
    distiller.compile("adam")
    distiller.beta = 0.5
    schedule = callbacks.HyperparameterSchedule("beta", callbacks.constant(1))
    with pytest.raises(ValueError, match="'beta' in a plain attribute"):
        fit_with(distiller, schedule)
    with pytest.raises(ValueError, match="has no attribute 'gamma'"):
        fit_with(
            distiller,
            callbacks.HyperparameterSchedule("gamma", callbacks.constant(1)),
        )


@pytest.mark.parametrize(
    "schedule,error,message",
    [
        (
            callbacks.TemperatureSchedule(callbacks.linear(2.0, 0.0, 2)),
            ValueError,
            "temperature=0.0 for epoch 1.*temperature must be > 0",
        ),
        (
            callbacks.AlphaSchedule(callbacks.linear(0.5, 1.5, 3)),
            ValueError,
            r"alpha=1.5 for epoch 2.*alpha must be in \[0, 1\]",
        ),
        (
            callbacks.AlphaSchedule(lambda epoch: "high"),
            TypeError,
            "alpha='high' for epoch 0.*alpha must be a number",
        ),
    ],
)
def test_refused_values_name_the_epoch(
    teacher, student, schedule, error, message
):
    distiller = kd_keras.Distiller(teacher, student)
    distiller.compile("adam")
    with pytest.raises(error, match=message):
        fit_with(distiller, schedule, epochs=3)


def test_callback_argument_errors():
    with pytest.raises(TypeError, match="name=3"):
        callbacks.HyperparameterSchedule(3, callbacks.constant(1))
    with pytest.raises(TypeError, match="schedule=4.0"):
        callbacks.TemperatureSchedule(4.0)


def test_docstring_examples():
    results = doctest.testmod(callbacks, extraglobs={"kd_keras": kd_keras})
    assert results.attempted and not results.failed


class ScriptedScore(keras.callbacks.Callback):
    """Logs `scores[epoch]` as `score` and keeps each epoch's weights."""

    def __init__(self, scores):
        super().__init__()
        self.scores = scores
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        logs["score"] = self.scores[epoch]
        self.weights.append(self.model.student.get_weights())


def _fit_with_checkpoint(teacher, student, data, checkpoint):
    x, y = data
    distiller = kd_keras.Distiller(teacher, student)
    distiller.compile("adam")
    # The best score is at epoch 1, and the last epoch is worse.
    scripted = ScriptedScore([3.0, 1.0, 2.0, 4.0])
    distiller.fit(x, y, epochs=4, callbacks=[scripted, checkpoint], verbose=0)
    return scripted.weights


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_student_checkpoint_keeps_the_best_epoch_as_a_plain_student(
    teacher, student, data, tmp_path, suffix, plain_keras
):
    path = tmp_path / f"student{suffix}"
    weights = _fit_with_checkpoint(
        teacher,
        student,
        data,
        callbacks.StudentCheckpoint(
            str(path), monitor="score", mode="min", save_best_only=True
        ),
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    best = keras.models.clone_model(student)
    best.set_weights(weights[1])
    for saved, expected in zip(
        keras.models.load_model(path).get_weights(), weights[1], strict=True
    ):
        np.testing.assert_array_equal(saved, expected)
    x, _ = data
    assert_reloads_without_kd_keras(plain_keras, path, best, x, tmp_path)


def test_student_checkpoint_weights_only(teacher, student, data, tmp_path):
    path = tmp_path / "student.weights.h5"
    weights = _fit_with_checkpoint(
        teacher,
        student,
        data,
        callbacks.StudentCheckpoint(
            str(path),
            monitor="score",
            mode="min",
            save_best_only=True,
            save_weights_only=True,
        ),
    )
    fresh = keras.models.clone_model(student)
    fresh.load_weights(path)
    for saved, expected in zip(fresh.get_weights(), weights[1], strict=True):
        np.testing.assert_array_equal(saved, expected)


def test_student_checkpoint_refuses_a_model_without_student(data, tmp_path):
    x, y = data
    model = keras.Sequential(
        [keras.Input((x.shape[1],)), keras.layers.Dense(4)]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    checkpoint = callbacks.StudentCheckpoint(str(tmp_path / "m.h5"))
    with pytest.raises(TypeError, match="has no `student`.*Sequential"):
        model.fit(x, y, epochs=1, callbacks=[checkpoint], verbose=0)
