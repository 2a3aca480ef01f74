"""`kd-keras tune`'s diagnosis: what it concludes from the teacher, the
student trained alone and the soft targets."""

from kd_keras.app import tune

SPREAD = {1.0: 0.01, 4.0: 0.2}


def test_a_student_at_chance_points_at_batchnorm():
    """A MobileNetV3 trained from scratch sat at 0.08 validation accuracy
    for 10 epochs (BatchNorm momentum 0.999); only the teacher agreement
    hinted at it."""
    line = tune.conclusion(0.91, 0.098, SPREAD, agreement=0.1, classes=10)
    assert line.startswith("The student trained alone stays at chance (0.10")
    assert "BatchNormalization momentum" in line and "0-255 or [0, 1]" in line


def test_a_learning_student_gets_the_usual_conclusions():
    assert "leads the student trained alone by 11.0 points" in (
        tune.conclusion(0.91, 0.80, SPREAD, agreement=0.82, classes=10)
    )
    assert "no better than the student" in tune.conclusion(0.8, 0.85, SPREAD)
    assert "nearly one-hot even at T = 4" in tune.conclusion(
        0.9, 0.8, {1.0: 0.0, 4.0: 0.01}
    )


def test_soft_target_lines():
    lines, off_top = tune.soft_target_lines([[4.0, 0.0, 0.0]], [1.0, 4.0])
    assert lines[0].startswith("  T = 1: entropy")
    assert round(off_top[4.0], 3) == 0.424
