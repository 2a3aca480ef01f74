"""`kd_keras.tune`: KerasTuner searches with the teacher paid once."""

import keras
import numpy as np
import pytest
from conftest import FEATURES, make_data, make_mlp

import kd_keras
from kd_keras import tuning


class CountingLayer(keras.layers.Layer):
    """Counts the samples it sees, in a variable (graph mode too)."""

    def build(self, input_shape):
        self.samples = self.add_weight(
            shape=(), initializer="zeros", trainable=False, dtype="int64"
        )

    def call(self, x):
        self.samples.assign_add(keras.ops.cast(keras.ops.shape(x)[0], "int64"))
        return x


def counting_teacher(trained):
    """`trained` behind a layer that counts the samples the teacher sees."""
    inputs = keras.Input((FEATURES,))
    counter = CountingLayer()
    teacher = keras.Model(inputs, trained(counter(inputs)), name="teacher")
    return teacher, counter


def student_fn(hp):
    return make_mlp(16, "student")


def search(tmp_path, teacher, **kwargs):
    x, y = make_data(samples=120)
    options = dict(
        validation_split=0.25,
        max_trials=3,
        epochs=2,
        batch_size=30,
        directory=tmp_path,
        project_name="search",
        verbose=0,
    )
    return tuning.tune(teacher, student_fn, x, y, **{**options, **kwargs})


@pytest.fixture(scope="module")
def default_search(trained_teacher, tmp_path_factory):
    """`(result, counter)`: a search of the default space with a teacher
    that counts the samples it sees."""
    teacher, counter = counting_teacher(trained_teacher)
    return search(tmp_path_factory.mktemp("default"), teacher), counter


def test_the_teacher_runs_once_for_the_whole_search(default_search):
    result, counter = default_search
    assert len(result.trials) == 3
    # One pass over the 90 training and the 30 validation inputs, not one
    # per epoch of every trial.
    assert int(counter.samples.numpy()) == 120
    assert result.teacher_passes == 2


def test_the_result(default_search):
    x, y = make_data(samples=120)
    result, _ = default_search
    assert isinstance(result.student, keras.Model)
    assert not isinstance(result.student, kd_keras.Distiller)
    assert set(result.hyperparameters) == {
        "method",
        "temperature",
        "alpha",
        "learning_rate",
    }
    assert result.hyperparameters["temperature"] in tuning.TEMPERATURES
    assert result.hyperparameters["alpha"] in tuning.ALPHAS
    scores = [trial["val_accuracy"] for trial in result.trials]
    assert result.validation_accuracy == max(scores)
    # The student returned is the best trial's at its best epoch: its
    # accuracy on the validation split is the trial's score.
    (_, _), (x_val, y_val) = kd_keras.datasets.split_validation(x, y, 0.25)
    accuracy = np.mean(
        result.student.predict(x_val, verbose=0).argmax(-1) == y_val
    )
    assert accuracy == pytest.approx(result.validation_accuracy, abs=1e-6)


def test_trials_start_from_the_same_student(trained_teacher):
    hypermodel = tuning.DistillationHyperModel(trained_teacher, student_fn)
    import keras_tuner

    first = hypermodel.build(keras_tuner.HyperParameters())
    second = hypermodel.build(keras_tuner.HyperParameters())
    for a, b in zip(
        first.student.get_weights(), second.student.get_weights(), strict=True
    ):
        np.testing.assert_array_equal(a, b)


def test_hyperband_trains_partial_trials(trained_teacher, tmp_path):
    teacher, counter = counting_teacher(trained_teacher)
    result = search(tmp_path, teacher, tuner="hyperband", epochs=3, factor=3)
    assert len(result.trials) >= 3
    assert int(counter.samples.numpy()) == 120
    assert_first_trial_tries_the_defaults(result)


def assert_first_trial_tries_the_defaults(result):
    """`kd-keras tune --trials 3` drew three learning rates of 2-3e-4 and
    returned a student 9 points below its scratch twin."""
    first = min(result.trials, key=lambda trial: int(trial["trial_id"]))
    assert (first["temperature"], first["alpha"]) == (4.0, 0.1)
    assert first["learning_rate"] == pytest.approx(1e-3)
    assert first["method"] == "kd"


def test_the_first_random_trial_tries_the_defaults(default_search):
    assert_first_trial_tries_the_defaults(default_search[0])


@pytest.fixture(scope="module")
def wider_search(trained_teacher, tmp_path_factory):
    """A search of two methods, a parameter of one, and the epochs."""
    return search(
        tmp_path_factory.mktemp("wider"),
        trained_teacher,
        max_trials=4,
        methods=("kd", "dkd"),
        method_parameters={"dkd": {"nckd_weight": [1.0, 8.0]}},
        epoch_choices=[1, 3],
    )


def test_a_method_and_its_parameters_are_searched(wider_search):
    for trial in wider_search.trials:
        assert trial["method"] in ("kd", "dkd")
        assert ("dkd_nckd_weight" in trial) == (trial["method"] == "dkd")


def test_the_number_of_epochs_is_searched(wider_search):
    space = wider_search.tuner.oracle.hyperparameters.get_config()["space"]
    (epochs,) = [h for h in space if h["config"]["name"] == "epochs"]
    assert epochs["config"]["values"] == [1, 3]
    for trial in wider_search.trials:
        assert trial["epochs"] in (1, 3)
        assert trial["best_epoch"] <= trial["epochs"]


class Interrupt(keras.callbacks.Callback):
    """Interrupts the search in its second trial (as Ctrl-C would).
    KerasTuner copies callbacks per trial: the count is kept on the class."""

    trials = 0

    def on_train_begin(self, logs=None):
        Interrupt.trials += 1
        if Interrupt.trials == 2:
            raise KeyboardInterrupt


class CountTrials(keras.callbacks.Callback):
    """Counts the trials that train (KerasTuner copies callbacks per trial,
    so the count is kept on the class)."""

    trials = 0

    def on_train_begin(self, logs=None):
        CountTrials.trials += 1


def test_an_interrupted_search_resumes(trained_teacher, tmp_path):
    Interrupt.trials = 0
    with pytest.raises(KeyboardInterrupt):
        search(tmp_path, trained_teacher, callbacks=[Interrupt()])
    CountTrials.trials = 0
    result = search(tmp_path, trained_teacher, callbacks=[CountTrials()])
    # Trial 0 completed before the interruption and is kept: the resumed
    # search trains the interrupted trial and the missing one.
    assert CountTrials.trials == 2
    assert [t["trial_id"] for t in result.trials] == ["0", "1", "2"]


def test_a_search_of_something_else_is_not_resumed(trained_teacher, tmp_path):
    search(tmp_path, trained_teacher, max_trials=1)
    x, y = make_data(samples=120)
    with pytest.raises(ValueError, match="holds a search with another student"):
        tuning.tune(
            trained_teacher,
            lambda hp: make_mlp(8, "student"),
            x,
            y,
            max_trials=1,
            epochs=1,
            directory=tmp_path,
            project_name="search",
            verbose=0,
        )
    with pytest.raises(ValueError, match="another search space"):
        search(tmp_path, trained_teacher, max_trials=1, alphas=(0.5,))
    # overwrite=True starts it over.
    result = search(
        tmp_path, trained_teacher, max_trials=1, alphas=(0.5,), overwrite=True
    )
    assert result.hyperparameters["alpha"] == 0.5


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"tuner": "grid"}, ValueError, "tuner must be one of random"),
        ({"tuner": object}, ValueError, "tuner must be one of random"),
        (
            {"alphas": (0.5, 2.0)},
            ValueError,
            r"alphas must lie in \[0.0, 1.0\]",
        ),
        ({"temperatures": ()}, TypeError, "temperatures must be a non-empty"),
        (
            {"tuner": "hyperband", "epoch_choices": [1, 2]},
            ValueError,
            "Hyperband chooses each trial's epochs",
        ),
        ({"learning_rates": (1e-2, 1e-4)}, ValueError, "0 < low <= high"),
        ({"methods": ("nope",)}, ValueError, "Unknown method 'nope'"),
        ({"validation_split": 0.0}, ValueError, "validation_split must be"),
        (
            {"method_parameters": {"dkd": {"nckd_weight": [1.0]}}},
            ValueError,
            "method_parameters names",
        ),
    ],
)
def test_bad_input(trained_teacher, tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        search(tmp_path, trained_teacher, **kwargs)


def test_student_fn_must_be_callable(trained_teacher):
    with pytest.raises(TypeError, match="student_fn must be a function"):
        tuning.DistillationHyperModel(trained_teacher, make_mlp(4, "s"))
