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


def saved_figures(monkeypatch):
    """The figures the plots would save, kept instead of written."""
    from kd_keras.app import report

    figures = []
    monkeypatch.setattr(
        report, "save_png", lambda fig, path: figures.append(fig)
    )
    return figures


def test_progress_shows_the_last_improvement_and_whole_trials(monkeypatch):
    """The best-so-far line stopped at 0.812 where trial 3 scored 0.815,
    and its ticks read 1.00, 1.25, ..."""
    figures = saved_figures(monkeypatch)
    scores = [0.80, 0.812, 0.815]
    tune.plot_progress([{"val_accuracy": s} for s in scores], "progress.png")
    (axis,) = figures[0].axes
    step = axis.lines[1]
    assert step.get_ydata()[-1] == 0.815 and step.get_xdata()[-1] > 3
    assert all(float(t).is_integer() for t in axis.get_xticks())


def test_heatmap_fills_its_figure(monkeypatch):
    """A blank strip took the left 40% of the figure."""
    figures = saved_figures(monkeypatch)
    trials = [{"temperature": 4.0, "alpha": 0.1, "val_accuracy": 0.9}]
    tune.plot_heatmap(trials, "heatmap.png", (1.0, 4.0), (0.1, 0.5))
    axis = figures[0].axes[0]
    assert axis.get_aspect() == "auto"
    box = axis.get_position()
    assert box.x0 < 0.25 and box.width > 0.5


def test_a_tuned_student_below_its_scratch_twin_is_a_warning():
    """A 3-trial search printed "-9.2 points" against the scratch twin and
    nothing else."""
    accuracies = {"teacher": 0.95, "scratch": 0.9222, "best": 0.8306}
    warning = tune.shortfall(accuracies, trials=3, epochs=5)
    assert warning.startswith("the tuned student scores 9.2 points below")
    assert "it ran 3; --trials" in warning and "at most 5; --epochs" in warning
    for best in (0.9222, 0.95):
        assert tune.shortfall({**accuracies, "best": best}, 3, 5) is None
