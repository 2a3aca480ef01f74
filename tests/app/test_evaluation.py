import keras
import numpy as np
import pytest
import tensorflow as tf

from kd_keras.app import evaluation


def test_confusion_matrix_hand_computed():
    matrix = evaluation.confusion_matrix(
        np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2]), 3
    )
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])


def test_accuracy_agreement_and_latency():
    x = np.eye(3, dtype="float32")
    identity = keras.Sequential([keras.Input((3,)), keras.layers.Identity()])
    reverse = keras.Sequential(
        [keras.Input((3,)), keras.layers.Lambda(lambda t: t[:, ::-1])]
    )
    assert evaluation.accuracy(identity, x, np.array([0, 1, 2])) == 1.0
    assert evaluation.accuracy(identity, x, np.array([0, 0, 2])) == (
        pytest.approx(2 / 3)
    )
    # reverse picks 2, 1, 0: it agrees with identity on the middle sample.
    assert evaluation.agreement(identity, reverse, x) == pytest.approx(1 / 3)
    assert 0 < evaluation.latency_ms(identity, x, repeats=5) < 1000


# --- Arrays or a tf.data.Dataset ------------------------------------------


def _reference(model, x):
    """The model's outputs on all of `x` in one call, as numpy: what the
    measures, which run batch by batch, are compared with."""
    return keras.ops.convert_to_numpy(model(x, training=False))


def _batched(*arrays):
    """A dataset of batches of 7, which do not divide the 96 samples."""
    return tf.data.Dataset.from_tensor_slices(arrays).batch(7)


def _given(x, y):
    """The same samples as arrays and as datasets: `{name: (x, y)}`."""
    return {
        "arrays": (x, y),
        "(x, y)": (_batched(x, y), None),
        "(x, y, w)": (_batched(x, y, np.ones(len(x), "float32")), None),
        "prefetched": (_batched(x, y).prefetch(2), None),
    }


def test_datasets_give_the_results_of_arrays(data, teacher, student):
    x, y = data
    assert len(x) % 7
    teacher_outputs = _reference(teacher, x)
    teacher_classes = np.argmax(teacher_outputs, -1)
    student_classes = np.argmax(_reference(student, x), -1)
    agreement = np.mean(teacher_classes == student_classes)
    assert 0 < agreement < 1  # the models differ
    for name, (x_given, y_given) in _given(x, y).items():
        np.testing.assert_allclose(
            evaluation.outputs(teacher, x_given),
            teacher_outputs,
            atol=1e-5,
            err_msg=name,
        )
        for model, classes in [
            (teacher, teacher_classes),
            (student, student_classes),
        ]:
            np.testing.assert_array_equal(
                evaluation.predict_classes(model, x_given), classes, name
            )
            assert evaluation.accuracy(model, x_given, y_given) == float(
                np.mean(classes == y)
            ), name
        assert evaluation.agreement(teacher, student, x_given) == (
            pytest.approx(agreement, abs=1e-6)
        ), name
        assert 0 < evaluation.latency_ms(student, x_given, repeats=5) < 1000
    # A dataset of inputs alone serves every measure but the accuracy.
    assert evaluation.agreement(teacher, student, _batched(x)) == (
        pytest.approx(agreement, abs=1e-6)
    )
    np.testing.assert_array_equal(
        evaluation.predict_classes(student, _batched(x)), student_classes
    )


def test_one_pass_over_a_dataset_that_reshuffles(data, teacher):
    """Labels stay with their samples and both models of `agreement` see
    the same batches, though every pass over the dataset has its own
    order: two passes would pair a teacher's class with another sample's.
    """
    x, y = data
    shuffled = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), seed=1, reshuffle_each_iteration=True)
        .batch(7)
    )
    firsts = [next(iter(shuffled))[1].numpy() for _ in range(2)]
    assert not np.array_equal(*firsts)  # each pass has its own order
    twin = keras.models.clone_model(teacher)
    twin.set_weights(teacher.get_weights())
    assert evaluation.agreement(teacher, twin, shuffled) == 1.0
    classes = np.argmax(_reference(teacher, x), -1)
    assert evaluation.accuracy(teacher, shuffled) == float(
        np.mean(classes == y)
    )


def test_one_hot_and_column_labels(data, student):
    x, y = data
    classes = np.argmax(_reference(student, x), -1)
    expected = float(np.mean(classes == y))
    one_hot = np.eye(4, dtype="float32")[y]
    column = y[:, np.newaxis]
    for x_given, y_given in [
        (x, one_hot),
        (x, column),
        (_batched(x, one_hot), None),
        (_batched(x, column), None),
    ]:
        assert evaluation.accuracy(student, x_given, y_given) == expected


def test_dataset_and_label_errors(data, teacher, student):
    x, y = data
    with pytest.raises(ValueError, match="x is a tf.data.Dataset whose "):
        evaluation.accuracy(student, _batched(x))
    with pytest.raises(ValueError, match="y is needed with arrays x"):
        evaluation.accuracy(student, x)
    with pytest.raises(ValueError, match="'x' sizes: 96\n'y' sizes: 95"):
        evaluation.accuracy(student, x, y[:-1])
    with pytest.raises(ValueError, match="y must be None when x is a tf"):
        evaluation.accuracy(student, _batched(x, y), y)
    empty = _batched(x[:0], y[:0])
    # Of unknown length: found empty only once read.
    filtered = _batched(x, y).filter(lambda *batch: False)
    assert int(filtered.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    measures = [
        (evaluation.outputs, [student]),
        (evaluation.predict_classes, [student]),
        (evaluation.agreement, [teacher, student]),
        (evaluation.latency_ms, [student]),
    ]
    for nothing in (empty, filtered, x[:0]):
        for measure, models in measures:
            with pytest.raises(ValueError, match="x is empty|x is an empty"):
                measure(*models, nothing)
    for nothing in (empty, filtered):
        with pytest.raises(ValueError, match="x is an empty tf.data"):
            evaluation.accuracy(student, nothing)
    with pytest.raises(ValueError, match=r"x is empty \(0 samples\)"):
        evaluation.accuracy(student, x[:0], y[:0])
