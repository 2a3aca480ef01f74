"""The application's training protocol: the split, the settings, the
twins' budget."""

import numpy as np
import pytest
from conftest import make_data, make_mlp

from kd_keras.app import protocol


def arrays(samples=400):
    return make_data(samples=samples), make_data(seed=1, samples=40)


def test_split_carves_a_fixed_stratified_validation_split():
    data = arrays()
    (x, y), (x_val, y_val), labelled = protocol.split(data, 40, seed=0)
    y_all = data[0][1]
    assert len(y_val) == pytest.approx(0.2 * len(y_all), abs=4)
    for c in range(4):
        share = np.mean(y_val == c) - np.mean(y_all == c)
        assert abs(share) < 0.02
    # The samples are split, not copied: none is in both.
    rows = {tuple(r) for r in x}
    assert not any(tuple(r) in rows for r in x_val)
    assert len(x) + len(x_val) == len(y_all)
    # Another seed draws other labelled samples, the same validation split.
    _, (x_val_1, _), labelled_1 = protocol.split(data, 40, seed=1)
    np.testing.assert_array_equal(x_val, x_val_1)
    assert not np.array_equal(labelled, labelled_1)
    # 40 labels, 4 classes: 10 per class.
    np.testing.assert_array_equal(np.bincount(y[labelled]), [10] * 4)


def test_split_with_all_labels():
    (x, _), _, labelled = protocol.split(arrays(), np.inf, seed=0)
    np.testing.assert_array_equal(labelled, np.arange(len(x)))


def test_too_few_labels_are_refused():
    with pytest.raises(ValueError, match=r"labels must be at least .* \(4\)"):
        protocol.split(arrays(), 3, seed=0)


def test_twins_share_weights_and_steps(trained_teacher):
    data = protocol.split(arrays(), 40, seed=0)
    settings = {"epochs": 2, "patience": 5, "batch_size": 32}
    settings.update(alpha=0.1, temperature=4.0)
    initial = make_mlp(16, "student")
    before = initial.get_weights()
    histories = {}
    for role in ("student_scratch", "student_pseudo", "student_distilled"):
        student, histories[role] = protocol.train_student(
            role, initial, trained_teacher, data, settings
        )
        assert student.name == role
    # The initial student is copied, not trained.
    for old, new in zip(before, initial.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    assert all(len(h["loss"]) == 2 for h in histories.values())
    assert "val_student_loss" in histories["student_distilled"]


def test_validation_fraction():
    assert protocol.validation_fraction(1_437) == 0.2
    assert protocol.validation_fraction(60_000) == 0.1


def test_epochs_cap_the_teacher_epochs():
    """`kd-keras demo --epochs 3` trains the teacher 3 epochs, not 30."""
    assert protocol.settings_for("mlp")["teacher_epochs"] == 30
    assert protocol.settings_for("mlp", epochs=3)["teacher_epochs"] == 3
    assert protocol.settings_for("mlp", epochs=100)["teacher_epochs"] == 30
    given = protocol.settings_for("mlp", epochs=3, teacher_epochs=10)
    assert (given["epochs"], given["teacher_epochs"]) == (3, 10)
