"""Teacher ensembles: values against numpy, distillation, saving, errors."""

import math

import keras
import numpy as np
import pytest
from conftest import CLASSES, FEATURES, make_mlp
from references import np_kd, np_softmax

import kd_keras
from kd_keras import teachers as kd_teachers


def three_teachers():
    keras.utils.set_random_seed(1)
    return [
        make_mlp(8, "teacher_a"),
        make_mlp(12, "teacher_b"),
        make_mlp(4, "teacher_c", activation="softmax"),
    ]


def np_ensemble(outputs, probabilities, average, weights):
    """The ensemble formula; `probabilities[i]` says outputs[i] is softmax."""
    weights = np.asarray(weights, dtype=np.float64)
    weights = weights / weights.sum()
    if average == "probabilities":
        probs = [
            o if is_prob else np_softmax(o)
            for o, is_prob in zip(outputs, probabilities, strict=True)
        ]
        return np.log(sum(w * p for w, p in zip(weights, probs, strict=True)))
    logits = [
        np.log(o) if is_prob else o
        for o, is_prob in zip(outputs, probabilities, strict=True)
    ]
    return sum(w * z for w, z in zip(weights, logits, strict=True))


@pytest.mark.parametrize("average", ["probabilities", "logits"])
@pytest.mark.parametrize("weights", [None, [2.0, 1.0, 1.0], [1, 0, 3]])
def test_values_match_numpy(data, average, weights):
    x, _ = data
    models = three_teachers()
    model = kd_teachers.ensemble(models, average=average, weights=weights)
    outputs = [m.predict(x, verbose=0).astype("float64") for m in models]
    expected = np_ensemble(
        outputs, [False, False, True], average, weights or [1, 1, 1]
    )
    got = model.predict(x, verbose=0)
    assert got.dtype == np.float32 and got.shape == (len(x), CLASSES)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    if average == "probabilities":  # the softmax of the output is the mean
        np.testing.assert_allclose(
            np_softmax(got), np.exp(expected), rtol=1e-5, atol=1e-6
        )


def test_hand_computed():
    def pair(a, b):
        return [np.array([a], "float32"), np.array([b], "float32")]

    average = kd_teachers.EnsembleAverage(average="logits")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(average(pair([1.0, 3.0], [3.0, 1.0]))),
        [[2.0, 2.0]],
    )
    # Probabilities (1/4, 3/4) and (3/4, 1/4) average to (1/2, 1/2).
    third = math.log(3.0)
    probs = kd_teachers.EnsembleAverage()(pair([0.0, third], [third, 0.0]))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(probs), [[math.log(0.5)] * 2], rtol=1e-6
    )
    # Weights 3:1: 3/4 (1/4, 3/4) + 1/4 (3/4, 1/4) = (3/8, 5/8).
    weighted = kd_teachers.EnsembleAverage(teacher_weights=[3, 1])(
        pair([0.0, third], [third, 0.0])
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(weighted),
        [[math.log(3 / 8), math.log(5 / 8)]],
        rtol=1e-6,
    )


def test_distiller_trains_from_an_ensemble(data):
    x, y = data
    models = three_teachers()
    teacher = kd_teachers.ensemble(models)
    before = [w.copy() for w in teacher.get_weights()]
    student = make_mlp(8, "student")
    student_before = [w.copy() for w in student.get_weights()]
    distiller = kd_keras.Distiller(teacher, student, temperature=2.0)
    distiller.compile("adam")
    distiller.fit(x, y, epochs=1, batch_size=48, verbose=0)
    for old, new in zip(before, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    assert all(not m.trainable for m in models)
    assert any(
        not np.array_equal(old, new)
        for old, new in zip(student_before, student.get_weights(), strict=True)
    )
    logs = distiller.evaluate(
        x, y, batch_size=len(x), verbose=0, return_dict=True
    )
    outputs = [m.predict(x, verbose=0).astype("float64") for m in models]
    ensemble_logits = np_ensemble(
        outputs, [False, False, True], "probabilities", [1, 1, 1]
    )
    s = student.predict(x, verbose=0)
    np.testing.assert_allclose(
        logs["distillation_loss"],
        np_kd(ensemble_logits, s, 2.0).mean(),
        rtol=1e-4,
    )


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_save_load_round_trip(data, tmp_path, suffix):
    x, _ = data
    model = kd_teachers.ensemble(
        three_teachers(), average="logits", weights=[1, 2, 3], name="trio"
    )
    path = kd_keras.saving.save_model(model, tmp_path / f"ensemble{suffix}")
    restored = kd_keras.load_student(path, safe_mode=True)
    assert restored.name == "trio"
    layer = restored.get_layer("trio_average")
    assert isinstance(layer, kd_teachers.EnsembleAverage)
    assert layer.average == "logits"
    np.testing.assert_allclose(layer.teacher_weights, [1 / 6, 2 / 6, 3 / 6])
    assert layer.activations == [None, None, "softmax"]
    np.testing.assert_array_equal(
        restored.predict(x, verbose=0), model.predict(x, verbose=0)
    )


def test_layer_config_round_trip():
    layer = kd_teachers.EnsembleAverage(
        average="logits", teacher_weights=[1, 3], activations=["softmax", None]
    )
    restored = kd_teachers.EnsembleAverage.from_config(layer.get_config())
    assert restored.get_config() == layer.get_config()
    assert restored.teacher_weights == [0.25, 0.75]


def test_multiple_inputs_are_shared():
    def two_input_teacher(units, name):
        a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
        h = keras.layers.Concatenate()([a, b])
        outputs = keras.layers.Dense(CLASSES)(keras.layers.Dense(units)(h))
        return keras.Model({"a": a, "b": b}, outputs, name=name)

    models = [two_input_teacher(4, "t1"), two_input_teacher(6, "t2")]
    model = kd_teachers.ensemble(models, average="logits")
    rng = np.random.default_rng(0)
    inputs = {
        "a": rng.normal(size=(5, 3)).astype("f4"),
        "b": rng.normal(size=(5, 2)).astype("f4"),
    }
    expected = sum(m.predict(inputs, verbose=0) for m in models) / 2
    np.testing.assert_allclose(
        model.predict(inputs, verbose=0), expected, rtol=1e-5, atol=1e-6
    )


# Bad input: each error names the argument.


def test_teachers_must_be_a_non_empty_list_of_models(teacher):
    with pytest.raises(ValueError, match="teachers must list at least 1"):
        kd_teachers.ensemble([])
    with pytest.raises(TypeError, match="teachers must be a list"):
        kd_teachers.ensemble(teacher)
    with pytest.raises(TypeError, match=r"teachers\[1\] must be a keras.Model"):
        kd_teachers.ensemble([teacher, "teacher"])


def test_output_shapes_must_match(teacher):
    inputs = keras.Input((FEATURES,))
    other = keras.Model(inputs, keras.layers.Dense(CLASSES + 1)(inputs))
    with pytest.raises(ValueError, match="same output shape"):
        kd_teachers.ensemble([teacher, other])


def test_input_shapes_must_match(teacher):
    inputs = keras.Input((FEATURES + 1,))
    other = keras.Model(inputs, keras.layers.Dense(CLASSES)(inputs))
    with pytest.raises(ValueError, match="same inputs"):
        kd_teachers.ensemble([teacher, other])


def test_teachers_need_one_output_and_defined_inputs(teacher):
    inputs = keras.Input((FEATURES,))
    two = keras.Model(
        inputs,
        [keras.layers.Dense(CLASSES)(inputs), keras.layers.Dense(2)(inputs)],
    )
    with pytest.raises(ValueError, match="one output"):
        kd_teachers.ensemble([teacher, two])
    unbuilt = keras.Sequential([keras.layers.Dense(CLASSES)])
    with pytest.raises(ValueError, match="no defined inputs"):
        kd_teachers.ensemble([teacher, unbuilt])


def test_teacher_names_must_differ(teacher):
    twin = keras.models.clone_model(teacher)
    with pytest.raises(ValueError, match="Two teachers are named"):
        kd_teachers.ensemble([teacher, twin])


def test_bad_average(teacher):
    with pytest.raises(ValueError, match="average must be one of"):
        kd_teachers.ensemble([teacher], average="median")


@pytest.mark.parametrize(
    "weights,error,message",
    [
        ([1.0], ValueError, "one number per teacher"),
        ([1.0, -0.5], ValueError, r"weights\[1\] must be >= 0"),
        ([0, 0], ValueError, "must not all be zero"),
        ([1.0, "a"], TypeError, r"weights\[1\] must be a number"),
        (2.0, TypeError, "weights must be a list"),
    ],
)
def test_bad_weights(teacher, weights, error, message):
    other = make_mlp(4, "other")
    with pytest.raises(error, match=message):
        kd_teachers.ensemble([teacher, other], weights=weights)


def test_probability_average_needs_softmax_outputs(teacher):
    sigmoid = make_mlp(4, "sigmoid_teacher", activation="sigmoid")
    with pytest.raises(ValueError, match='Use average="logits"'):
        kd_teachers.ensemble([teacher, sigmoid])
    kd_teachers.ensemble([teacher, sigmoid], average="logits")
    inputs = keras.Input((FEATURES,))
    single = [
        keras.Model(inputs, keras.layers.Dense(1)(inputs), name=f"r{i}")
        for i in range(2)
    ]
    with pytest.raises(ValueError, match="single unit"):
        kd_teachers.ensemble(single)
    kd_teachers.ensemble(single, average="logits")
