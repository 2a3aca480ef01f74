"""The report of a run: a table and PNG plots, from the run's `run.json`."""

import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from kd_keras.files import atomic_path, check_free

ROLES = {
    "teacher": "teacher",
    "student_scratch": "scratch student",
    "student_pseudo": "pseudo-label student",
    "student_distilled": "distilled student",
}
RUN_FILE = "run.json"
# What a report reads from run.json.
RUN_KEYS = (
    "dataset",
    "settings",
    "samples",
    "verdict",
    "models",
    "histories",
    "validation_accuracy",
    "confusion_matrix",
)
PLOTS = ("curves.png", "comparison.png", "confusion.png")


def read_run(run_dir):
    """The `run.json` of `run_dir`, with a clear error if it is missing or
    lacks what a report reads."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{str(run_dir)!r} is not a run folder: it has no {RUN_FILE}. "
            "`kd-keras demo` writes one."
        )
    run = json.loads(path.read_text())
    missing = [key for key in RUN_KEYS if key not in run]
    if missing:
        raise ValueError(
            f"{path} has no {', '.join(map(repr, missing))}: an older "
            "`kd-keras demo` wrote it. Run the demo again to report on it."
        )
    return run


def figure(columns=1, figsize=(7, 4)):
    """A figure and its axes, without pyplot: importing the application
    leaves matplotlib's backend and pyplot's figures alone."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(1, columns)


def save_png(fig, path):
    """Writes `fig` as a PNG atomically."""
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=100, format="png")


def table(run):
    """The comparison of the run's models as a Markdown table."""
    lines = [
        "| model | parameters | file size | test accuracy | latency / sample "
        "| agreement with teacher |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for m in run["models"]:
        lines.append(
            f"| {m['role']} | {m['parameters']:,} "
            f"| {m['file_bytes'] / 1024:,.0f} KiB | {m['test_accuracy']:.4f} "
            f"| {m['latency_ms']:.3f} ms | {m['teacher_agreement']:.4f} |"
        )
    return "\n".join(lines)


# Each student's colour and line style, the same in every plot.
STYLES = {
    "teacher": ("tab:orange", "-"),
    "student_scratch": ("tab:gray", "--"),
    "student_pseudo": ("tab:green", ":"),
    "student_distilled": ("tab:blue", "-"),
}


def _role_key(model):
    """`run.json` model entry -> its key in `STYLES` (from its role)."""
    return next(key for key, role in ROLES.items() if role == model["role"])


def _curves(run, path):
    histories = run["histories"]
    teacher = run["validation_accuracy"]["teacher"]
    fig, (left, right) = figure(2, figsize=(11, 4))
    for key, history in histories.items():
        color, style = STYLES[key]
        epochs = np.arange(1, len(history["val_accuracy"]) + 1)
        label = ROLES[key]
        left.plot(
            epochs, history["val_accuracy"], color=color, ls=style, label=label
        )
        best = int(np.argmax(history["val_accuracy"]))
        left.plot(best + 1, history["val_accuracy"][best], "o", color=color)
        # The distiller's `val_loss` adds the distillation loss.
        labels_loss = history.get("val_student_loss", history["val_loss"])
        right.plot(epochs, labels_loss, color=color, ls=style, label=label)
    left.axhline(teacher, color=STYLES["teacher"][0], lw=1, label="teacher")
    left.set(
        xlabel="epoch",
        ylabel="validation accuracy",
        title="Students on the validation split (dot: epoch kept)",
    )
    right.set(
        xlabel="epoch",
        ylabel="cross-entropy",
        title="Validation cross-entropy on the labels",
    )
    for axis in (left, right):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    save_png(fig, path)


def _comparison(run, path):
    """Test accuracy of each model, bars from 0 to 1 (a cut base would make
    the gaps look larger than they are), each labelled inside its bar."""
    models = run["models"]
    accuracy = {_role_key(m): m["test_accuracy"] for m in models}
    fig, axis = figure(figsize=(8, 4.5))
    bars = axis.bar(
        [m["role"].replace(" student", "\nstudent") for m in models],
        [m["test_accuracy"] for m in models],
        color=[STYLES[_role_key(m)][0] for m in models],
    )
    for bar, m in zip(bars, models, strict=True):
        axis.annotate(
            f"{m['test_accuracy']:.4f}\n{m['parameters']:,}\nparameters",
            (bar.get_x() + bar.get_width() / 2, bar.get_height() / 2),
            ha="center",
            va="center",
            fontsize=9,
            color="white",
        )
    scratch, teacher = accuracy["student_scratch"], accuracy["teacher"]
    title = f"Test accuracy on {run['dataset']}"
    if teacher > scratch:
        closed = (accuracy["student_distilled"] - scratch) / (teacher - scratch)
        title += (
            f"\nthe distilled student closes {100 * closed:.0f}% of the "
            "gap between scratch and teacher"
        )
    axis.set_ylim(0.0, 1.0)
    axis.set(ylabel="test accuracy", title=title)
    axis.grid(axis="y", alpha=0.3)
    axis.set_axisbelow(True)
    fig.tight_layout()
    save_png(fig, path)


def _confusion(run, path):
    """The distilled student's confusion matrix; empty cells are left
    blank, so that the mistakes stand out."""
    matrix = np.array(run["confusion_matrix"])
    fig, axis = figure(figsize=(6, 5.5))
    image = axis.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            axis.text(
                j,
                i,
                str(count),
                ha="center",
                va="center",
                fontsize=9 if len(matrix) <= 10 else 6,
                color="white" if count > matrix.max() / 2 else "black",
            )
    ticks = np.arange(len(matrix))
    axis.set(
        xticks=ticks,
        yticks=ticks,
        xlabel="predicted class",
        ylabel="true class",
        title="Distilled student: confusion matrix (test)",
    )
    fig.colorbar(image, ax=axis, fraction=0.046)
    fig.tight_layout()
    save_png(fig, path)


def report_paths(run_dir):
    """`report.md` and the PNG plots of `run_dir`, as `write_report` writes
    them."""
    run_dir = Path(run_dir)
    return [run_dir / "report.md", *(run_dir / name for name in PLOTS)]


def write_report(run_dir, overwrite=False):
    """Writes the PNG plots and `report.md` of `run_dir`; returns paths.

    Unless `overwrite`, refuses with a `FileExistsError`, before drawing
    anything, if any of them exists.
    """
    run = read_run(run_dir)
    report, *paths = report_paths(run_dir)
    check_free([report, *paths], overwrite)
    for draw, path in zip(
        (_curves, _comparison, _confusion), paths, strict=True
    ):
        draw(run, path)
    settings = ", ".join(f"{k}={v}" for k, v in run["settings"].items())
    samples = ", ".join(f"{v:,} {k}" for k, v in run["samples"].items())
    markdown = [
        f"# Distillation on {run['dataset']}",
        "",
        run["verdict"],
        "",
        f"Samples: {samples}. Settings: {settings}.",
        "",
        table(run),
        "",
        *(f"![{path.stem}]({path.name})" for path in paths),
    ]
    with atomic_path(report, overwrite=True) as tmp:
        Path(tmp).write_text("\n".join(markdown) + "\n")
    return [report, *paths]
