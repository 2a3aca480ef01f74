"""`kd-keras tune`: a diagnosis, a KerasTuner search, its plots and the best
student with its card.

The run folder (`runs/tune_<dataset>` by default) holds KerasTuner's
project (`search/`, from which an interrupted search resumes),
`diagnosis.txt`, `trials.csv`, `heatmap.png` (validation accuracy over T ×
alpha), `progress.png` (the best validation accuracy against the trial
number) and `result.txt` (the best settings, the test accuracies and, when
the tuned student falls below its scratch twin, a warning).
"""

import csv
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from kd_keras import models, tuning, views
from kd_keras.app import evaluation, protocol, report
from kd_keras.files import atomic_path

PROJECT = "search"


def soft_target_lines(teacher_logits, temperatures):
    """One line per temperature: how informative the teacher's soft targets
    are (their mean entropy, as a share of the largest possible, and the
    mean probability off the top class), and the off-top mass by T."""
    statistics = tuning.soft_target_statistics(teacher_logits, temperatures)
    lines = [
        f"  T = {t:g}: entropy {s['entropy']:.0%} of its maximum, "
        f"{s['off_top']:.1%} of the probability off the top class"
        for t, s in statistics.items()
    ]
    return lines, {t: s["off_top"] for t, s in statistics.items()}


def conclusion(
    teacher_accuracy, scratch_accuracy, off_top, agreement=1.0, classes=None
):
    """What the diagnosis means for the search, in one line.

    `agreement` is the student trained alone's agreement with the teacher
    on the validation data and `classes` the number of classes: a student
    at chance on both learns nothing, from the labels or from a teacher.
    """
    chance = 1 / classes if classes else 0.0
    if max(scratch_accuracy, agreement) < 1.5 * chance:
        return (
            f"The student trained alone stays at chance ({scratch_accuracy:.2f}"
            f" on validation, {agreement:.2f} agreement with the teacher): "
            "it learns nothing, from the labels or from a teacher. Check its "
            "BatchNormalization momentum (Keras Applications keep up to "
            "0.999, too slow for a few thousand images; "
            "kd_keras.models.application uses 0.9), its learning rate, and "
            "the scale of its inputs (pixels 0-255 or [0, 1])."
        )
    lead = 100 * (teacher_accuracy - scratch_accuracy)
    if lead <= 0:
        return (
            "The teacher is no better than the student trained alone: "
            "distillation has little to give it; a stronger teacher, or "
            "unlabelled inputs the teacher labels, would."
        )
    hottest = max(off_top)
    if off_top[hottest] < 0.05:
        return (
            f"The teacher leads by {lead:.1f} points, but its soft targets "
            f"are nearly one-hot even at T = {hottest:g}: try higher "
            "temperatures, or augmented inputs."
        )
    return (
        f"The teacher leads the student trained alone by {lead:.1f} points "
        "on validation data and its soft targets carry more than the "
        "labels: the search has something to find."
    )


def shortfall(accuracies, trials, epochs):
    """A warning when the tuned student scores below its scratch twin on
    the test data, with what to try; `None` otherwise."""
    gap = 100 * (accuracies["scratch"] - accuracies["best"])
    if gap <= 0:
        return None
    return (
        f"the tuned student scores {gap:.1f} points below its scratch twin "
        f"on the test data: this search did not make distillation pay off. "
        f"Try more trials (it ran {trials}; --trials), more epochs (at most "
        f"{epochs}; --epochs), or what diagnosis.txt suggests."
    )


def result_lines(best, accuracies):
    """The search's outcome: the best settings and the test accuracies."""
    gain = 100 * (accuracies["best"] - accuracies["scratch"])
    settings = ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in best.hyperparameters.items()
    )
    return [
        f"Best of {len(best.trials)} trials: {settings} (validation "
        f"accuracy {best.validation_accuracy:.4f}).",
        f"Test accuracy: tuned student {accuracies['best']:.4f}, scratch "
        f"twin {accuracies['scratch']:.4f} ({gain:+.1f} points), teacher "
        f"{accuracies['teacher']:.4f}.",
    ]


def write_trials(trials, path):
    """`trials` (dicts) as a CSV file, one row per trial."""
    columns = list(dict.fromkeys(key for trial in trials for key in trial))
    with atomic_path(path, overwrite=True) as tmp, open(tmp, "w") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(trials)


def plot_heatmap(trials, path, temperatures, alphas):
    """Best validation accuracy of the trials at each T × alpha of the
    grid (blank where no trial ran)."""
    temperatures, alphas = list(temperatures), list(alphas)
    grid = np.full((len(alphas), len(temperatures)), np.nan)
    for trial in trials:
        i = alphas.index(trial["alpha"])
        j = temperatures.index(trial["temperature"])
        grid[i, j] = np.fmax(grid[i, j], trial["val_accuracy"])
    fig, axis = report.figure(figsize=(1.0 * len(temperatures) + 2.0, 3.6))
    image = axis.imshow(grid, cmap="viridis", origin="lower", aspect="auto")
    for (i, j), value in np.ndenumerate(grid):
        if not np.isnan(value):
            # Dark text on the light end of the colour map, light on the dark.
            light = image.norm(value) > 0.6
            axis.text(
                j,
                i,
                f"{value:.3f}",
                ha="center",
                va="center",
                color="black" if light else "white",
                fontsize=8,
            )
    axis.set(
        xticks=range(len(temperatures)),
        xticklabels=[f"{t:g}" for t in temperatures],
        yticks=range(len(alphas)),
        yticklabels=[f"{a:g}" for a in alphas],
        xlabel="temperature T",
        ylabel="alpha",
        title="Best validation accuracy\n(blank: not tried)",
    )
    fig.colorbar(image, ax=axis)
    fig.tight_layout()
    report.save_png(fig, path)


def plot_progress(trials, path):
    """Each trial's validation accuracy and the best so far."""
    scores = [t["val_accuracy"] for t in trials]
    numbers = np.arange(1, len(scores) + 1)
    best = np.maximum.accumulate(scores)
    fig, axis = report.figure(figsize=(6, 3.5))
    axis.plot(numbers, scores, "o", color="tab:gray", label="trial")
    # Each trial's best so far, held to the next trial (and past the last).
    axis.step(
        [*numbers, numbers[-1] + 0.5],
        [*best, best[-1]],
        where="post",
        color="tab:blue",
        label="best so far",
    )
    axis.set(xlabel="trial", ylabel="validation accuracy", title="The search")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(alpha=0.3)
    axis.legend(loc="best")
    fig.tight_layout()
    report.save_png(fig, path)


def run(
    teacher,
    student,
    data,
    run_dir,
    trials=10,
    epochs=None,
    patience=None,
    batch_size=None,
    tuner="random",
    methods=("kd",),
    seed=0,
    overwrite=False,
    verbose=1,
):
    """Diagnoses, searches and reports; returns a dict of the results.

    Args:
        teacher: The trained teacher.
        student: The student whose initial weights every trial starts
            from (it is not changed).
        data: An `app.data.Data` whose parts are arrays in memory
            (`Data.in_memory`).
        run_dir: The run folder.
        trials: Number of trials (Hyperband sets its own). Defaults to 10.
        epochs: Most epochs a trial trains. Defaults to the demo's, per
            architecture.
        patience: Epochs without a better validation accuracy before a
            trial (and the scratch twin) stops. Defaults to the demo's.
        batch_size: Defaults to the demo's, per architecture.
        tuner: `"random"`, `"bayesian"` or `"hyperband"`.
        methods: Method names searched. Defaults to `("kd",)`.
        seed: Seed of the split, the tuner and the data order.
        overwrite: Start the search over instead of resuming it.
        verbose: Keras' `verbose` for the training.

    Returns:
        `best` (the `tuning.TuneResult`), `scratch` (the scratch twin),
        `accuracies` (test accuracy of `teacher`, `scratch`, `best`),
        `diagnosis` and `result` (their lines) and `warning` (the
        `shortfall`, or `None`).
    """
    run_dir = Path(run_dir)
    settings = protocol.settings_for(
        data.architecture,
        epochs=epochs,
        patience=patience,
        batch_size=batch_size,
    )
    train, validation = data.train, data.validation
    everything = np.arange(len(train[1]))
    (x_val, y_val), (x_test, y_test) = validation, data.test

    print(
        f"[1/3] Diagnosis: a student trained alone for at most "
        f"{settings['epochs']} epochs ..."
    )
    scratch, _ = protocol.train_student(
        "student_scratch",
        student,
        teacher,
        (train, validation, everything),
        settings,
        seed,
        verbose=verbose,
    )
    teacher_val = evaluation.accuracy(teacher, x_val, y_val)
    scratch_val = evaluation.accuracy(scratch, x_val, y_val)
    logits = views.to_logits(
        evaluation.outputs(teacher, data.distillation[0]),
        views.output_activation(teacher),
    )
    lines, off_top = soft_target_lines(logits, tuning.TEMPERATURES)
    diagnosis = [
        f"teacher validation accuracy {teacher_val:.4f}, student trained "
        f"alone {scratch_val:.4f}",
        "the teacher's soft targets on the training data:",
        *lines,
        conclusion(
            teacher_val,
            scratch_val,
            off_top,
            evaluation.agreement(teacher, scratch, x_val),
            data.classes,
        ),
    ]
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(run_dir / "diagnosis.txt", overwrite=True) as tmp:
        Path(tmp).write_text("\n".join(diagnosis) + "\n")
    print("\n".join(diagnosis))

    print(
        f"\n[2/3] Searching: {trials} trials of at most "
        f"{settings['epochs']} epochs ({tuner}) ..."
    )
    best = tuning.tune(
        teacher,
        lambda hp: models.copy_model(student, "student"),
        *data.distillation,
        validation_data=validation,
        tuner=tuner,
        max_trials=trials,
        epochs=settings["epochs"],
        batch_size=settings["batch_size"],
        methods=methods,
        directory=run_dir,
        project_name=PROJECT,
        overwrite=overwrite,
        seed=seed,
        callbacks=[protocol.early_stopping(settings["patience"])],
        verbose=verbose,
    )
    print("\n[3/3] Report")
    write_trials(best.trials, run_dir / "trials.csv")
    plot_heatmap(
        best.trials,
        run_dir / "heatmap.png",
        tuning.TEMPERATURES,
        tuning.ALPHAS,
    )
    plot_progress(best.trials, run_dir / "progress.png")
    accuracies = {
        name: evaluation.accuracy(model, x_test, y_test)
        for name, model in (
            ("teacher", teacher),
            ("scratch", scratch),
            ("best", best.student),
        )
    }
    result = result_lines(best, accuracies)
    warning = shortfall(accuracies, len(best.trials), settings["epochs"])
    with atomic_path(run_dir / "result.txt", overwrite=True) as tmp:
        lines = result + ([f"Warning: {warning}"] if warning else [])
        Path(tmp).write_text("\n".join(lines) + "\n")
    return {
        "best": best,
        "scratch": scratch,
        "accuracies": accuracies,
        "diagnosis": diagnosis,
        "result": result,
        "warning": warning,
    }
