"""Deep mutual learning: loss against numpy, one step, saving, errors."""

import keras
import numpy as np
import pytest
from conftest import CLASSES, FEATURES, assert_one_sgd_step, make_mlp
from references import (
    np_cross_entropy_logit_gradient,
    np_kd,
    np_kd_logit_gradient,
    np_softmax,
)

import kd_keras


def cohort(activation_c=None):
    keras.utils.set_random_seed(2)
    return [
        make_mlp(8, "a"),
        make_mlp(6, "b"),
        make_mlp(4, "c", activation=activation_c),
    ]


def np_mutual_losses(outputs, y, temperature, probabilities):
    """Zhang et al.: CE(y, p_i) + mean_{j != i} T**2 KL(p_j || p_i)."""
    logits = [
        np.log(o) if is_prob else o.astype(np.float64)
        for o, is_prob in zip(outputs, probabilities, strict=True)
    ]
    result = []
    for i, z in enumerate(logits):
        ce = -np.log(np_softmax(z)[np.arange(len(y)), y])
        peers = [
            np_kd(other, z, temperature)
            for j, other in enumerate(logits)
            if j != i
        ]
        result.append(ce.mean() + np.mean(peers, axis=0).mean())
    return result


def test_evaluate_reports_the_formula(data):
    x, y = data
    students = cohort(activation_c="softmax")
    model = kd_keras.MutualLearning(students, temperature=2.0)
    model.compile("sgd", metrics=[keras.metrics.SparseCategoricalAccuracy()])
    logs = model.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    outputs = [s.predict(x, verbose=0) for s in students]
    expected = np_mutual_losses(outputs, y, 2.0, [False, False, True])
    metrics = ("loss", "sparse_categorical_accuracy")
    assert set(logs) == {"loss"} | {f"{s}_{m}" for s in "abc" for m in metrics}
    for name, value in zip("abc", expected, strict=True):
        np.testing.assert_allclose(logs[f"{name}_loss"], value, rtol=1e-4)
    np.testing.assert_allclose(logs["loss"], sum(expected), rtol=1e-4)
    # One metric object per student, each with its own student's accuracy.
    for name, output in zip("abc", outputs, strict=True):
        np.testing.assert_allclose(
            logs[f"{name}_sparse_categorical_accuracy"],
            np.mean(output.argmax(-1) == y),
            rtol=1e-6,
        )


def test_unlabelled_samples_are_left_out_of_the_metrics(data):
    """Each student's accuracy counts labelled samples only; the hard loss
    of the others is masked and their mimicry kept."""
    x, y = data
    students = cohort()[:2]
    model = kd_keras.MutualLearning(students, temperature=2.0)
    model.compile(
        "sgd",
        metrics=["accuracy"],
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy("w")],
    )
    y_few = y.copy()
    y_few[::3] = kd_keras.labels.UNLABELLED
    labelled = y_few != kd_keras.labels.UNLABELLED
    weights = np.linspace(0.5, 2.0, len(y))
    logs = model.evaluate(
        x,
        y_few,
        sample_weight=weights,
        batch_size=32,
        verbose=0,
        return_dict=True,
    )
    outputs = [s.predict(x, verbose=0) for s in students]
    for name, output in zip("ab", outputs, strict=True):
        right = output.argmax(-1) == y
        np.testing.assert_allclose(
            logs[f"{name}_accuracy"], right[labelled].mean(), rtol=1e-6
        )
        np.testing.assert_allclose(
            logs[f"{name}_w"],
            np.sum((weights * right)[labelled]) / np.sum(weights[labelled]),
            rtol=1e-6,
        )
    # Zhang et al.'s loss with the hard term of unlabelled samples masked.
    (a, b) = (o.astype(np.float64) for o in outputs)
    for name, own, peer in (("a", a, b), ("b", b, a)):
        ce = -np.log(np_softmax(own)[np.arange(len(y)), y])
        per_sample = labelled * ce + np_kd(peer, own, 2.0)
        np.testing.assert_allclose(
            logs[f"{name}_loss"],
            np.sum(weights * per_sample) / len(y),
            rtol=1e-4,
        )


def test_one_hot_labels_give_the_same_losses(data):
    x, y = data
    model = kd_keras.MutualLearning(cohort()[:2])
    model.compile("sgd")
    sparse = model.evaluate(x, y, verbose=0, return_dict=True)
    dense = model.evaluate(
        x, np.eye(CLASSES, dtype="f4")[y], verbose=0, return_dict=True
    )
    assert dense == pytest.approx(sparse, rel=1e-5)


def test_one_sgd_step_updates_each_student_on_its_own_loss(data):
    """Each student follows the gradient of CE + KL to constant peers.

    The gradients are derived by hand: for student `i` with logits `z_i`,
    `dL_i/dz_i = softmax(z_i) - onehot(y)
                 + mean_{j != i} T * (softmax(z_i / T) - softmax(z_j / T))`.
    """
    x, y = data
    students = cohort()
    before = [s.get_weights() for s in students]
    logits = [s.predict(x, verbose=0) for s in students]
    model = kd_keras.MutualLearning(students, temperature=1.5)
    model.compile(keras.optimizers.SGD(0.5))
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    for i, student in enumerate(students):
        peers = [z for j, z in enumerate(logits) if j != i]
        logit_gradient = np_cross_entropy_logit_gradient(y, logits[i]) + sum(
            np_kd_logit_gradient(peer, logits[i], 1.5) for peer in peers
        ) / len(peers)
        assert_one_sgd_step(
            before[i], student.get_weights(), x, logit_gradient / len(x), 0.5
        )


def test_jit_compile_matches_graph(data):
    """XLA and graph steps agree on the losses and weights (after SGD)."""
    x, y = data
    results = []
    for jit in (False, True):
        students = cohort()
        model = kd_keras.MutualLearning(students)
        model.compile(
            keras.optimizers.SGD(0.1), metrics=["accuracy"], jit_compile=jit
        )
        history = model.fit(
            x, y, epochs=1, batch_size=32, shuffle=False, verbose=0
        )
        results.append((history.history, [s.get_weights() for s in students]))
    (graph_logs, graph), (xla_logs, xla) = results
    assert set(xla_logs) == {"loss", "a_loss", "b_loss", "c_loss"} | {
        f"{s}_accuracy" for s in "abc"
    }
    np.testing.assert_allclose(graph_logs["loss"], xla_logs["loss"], rtol=1e-5)
    for g, j in zip(graph, xla, strict=True):
        for a, b in zip(g, j, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_call_is_the_first_student(data):
    x, _ = data
    students = cohort()
    model = kd_keras.MutualLearning(students)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model(x)),
        keras.ops.convert_to_numpy(students[0](x)),
    )


def test_unbuilt_sequential_student(data):
    x, y = data
    sequential = keras.Sequential(
        [keras.layers.Dense(8, activation="relu"), keras.layers.Dense(CLASSES)],
        name="sequential_student",
    )
    model = kd_keras.MutualLearning([make_mlp(4, "a"), sequential])
    model.compile("adam", metrics=["accuracy"])
    history = model.fit(x, y, epochs=2, verbose=0)
    assert sequential.built
    assert "sequential_student_accuracy" in history.history


def test_config_and_file_round_trip(data, tmp_path):
    x, y = data
    model = kd_keras.MutualLearning(cohort(), temperature=3.0)
    model.compile("adam", metrics=["accuracy"])
    model.fit(x, y, epochs=1, verbose=0)
    restored = kd_keras.MutualLearning.from_config(model.get_config())
    assert restored.temperature == 3.0
    assert [s.get_config() for s in restored.students] == [
        s.get_config() for s in model.students
    ]
    model.save(tmp_path / "cohort.keras")
    loaded = keras.models.load_model(tmp_path / "cohort.keras")
    assert isinstance(loaded, kd_keras.MutualLearning)
    assert loaded.temperature == 3.0
    assert loaded.evaluate(x, y, verbose=0, return_dict=True) == (
        pytest.approx(model.evaluate(x, y, verbose=0, return_dict=True))
    )
    for saved, restored_var in zip(
        model.optimizer.variables, loaded.optimizer.variables, strict=True
    ):
        np.testing.assert_array_equal(saved.numpy(), restored_var.numpy())
    loaded.fit(x, y, epochs=1, verbose=0)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_save_student(data, tmp_path, suffix):
    x, _ = data
    students = cohort()
    model = kd_keras.MutualLearning(students)
    path = model.save_student(1, tmp_path / f"b{suffix}")
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(
        loaded.predict(x, verbose=0), students[1].predict(x, verbose=0)
    )
    with pytest.raises(FileExistsError):
        model.save_student(1, path)
    with pytest.raises(ValueError, match=r"index must be in \[0, 3\)"):
        model.save_student(3, tmp_path / "x.keras")
    with pytest.raises(TypeError, match="index must be an integer"):
        model.save_student("b", tmp_path / "x.keras")


# Bad input: each error names the argument.


def test_at_least_two_students():
    with pytest.raises(ValueError, match="students must list at least 2"):
        kd_keras.MutualLearning([make_mlp(4, "a")])
    with pytest.raises(TypeError, match="students must be a list"):
        kd_keras.MutualLearning(make_mlp(4, "a"))
    with pytest.raises(TypeError, match=r"students\[1\] must be a keras"):
        kd_keras.MutualLearning([make_mlp(4, "a"), "b"])


def test_students_must_be_distinct():
    a = make_mlp(4, "a")
    with pytest.raises(ValueError, match="different models"):
        kd_keras.MutualLearning([a, a])
    with pytest.raises(ValueError, match="distinct names"):
        kd_keras.MutualLearning([a, keras.models.clone_model(a)])


def test_mismatched_outputs():
    inputs = keras.Input((FEATURES,))
    wider = keras.Model(inputs, keras.layers.Dense(CLASSES + 1)(inputs))
    with pytest.raises(ValueError, match="same output shape"):
        kd_keras.MutualLearning([make_mlp(4, "a"), wider])
    with pytest.raises(ValueError, match="sigmoid"):
        kd_keras.MutualLearning(
            [make_mlp(4, "a"), make_mlp(4, "b", activation="sigmoid")]
        )
    single = [
        keras.Model(inputs, keras.layers.Dense(1)(inputs), name=f"r{i}")
        for i in range(2)
    ]
    with pytest.raises(ValueError, match="single output unit"):
        kd_keras.MutualLearning(single)


def test_labels_are_required(data):
    x, _ = data
    model = kd_keras.MutualLearning(cohort())
    model.compile("sgd")
    with pytest.raises(ValueError, match="trains on labels"):
        model.fit(x, epochs=1, verbose=0)


def test_metrics_dict_keyed_by_student_names():
    model = kd_keras.MutualLearning(cohort())
    with pytest.raises(ValueError, match="keyed by student names"):
        model.compile("sgd", metrics={"z": ["accuracy"]})
    model.compile("sgd", metrics={"a": ["accuracy"]})


@pytest.mark.parametrize("bad,error", [(0, ValueError), ("1", TypeError)])
def test_bad_temperature(bad, error):
    with pytest.raises(error, match="temperature"):
        kd_keras.MutualLearning(cohort(), temperature=bad)
