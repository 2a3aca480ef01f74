"""The report of a run: a table and PNG plots, from the run's `run.json`."""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from kd_keras.saving import atomic_path  # noqa: E402

RUN_FILE = "run.json"
PLOTS = ("curves.png", "comparison.png", "confusion.png")


def read_run(run_dir):
    """The `run.json` of `run_dir`, with a clear error if it is missing."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{str(run_dir)!r} is not a run folder: it has no {RUN_FILE}. "
            "`kd-keras demo` writes one."
        )
    return json.loads(path.read_text())


def _save(fig, path):
    """Writes `fig` as a PNG atomically and closes it."""
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


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


def _curves(run, path):
    scratch, distilled = (
        run["histories"]["scratch"],
        run["histories"]["distilled"],
    )
    epochs = np.arange(1, len(scratch["accuracy"]) + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for history, label, color in (
        (scratch, "scratch", "tab:gray"),
        (distilled, "distilled", "tab:blue"),
    ):
        left.plot(
            epochs,
            history["val_accuracy"],
            color=color,
            label=f"{label} (test)",
        )
        left.plot(
            epochs,
            history["accuracy"],
            color=color,
            ls="--",
            label=f"{label} (train)",
        )
    right.plot(epochs, scratch["val_loss"], color="tab:gray", label="scratch")
    right.plot(
        epochs,
        distilled["val_student_loss"],
        color="tab:blue",
        label="distilled",
    )
    left.set(xlabel="epoch", ylabel="accuracy", title="Student accuracy")
    right.set(
        xlabel="epoch",
        ylabel="cross-entropy",
        title="Student test loss on the labels",
    )
    for axis in (left, right):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    _save(fig, path)


def _comparison(run, path):
    models = run["models"]
    fig, axis = plt.subplots(figsize=(7, 4))
    accuracies = [m["test_accuracy"] for m in models]
    bars = axis.bar(
        [m["role"] for m in models],
        accuracies,
        color=["tab:orange", "tab:gray", "tab:blue"][: len(models)],
    )
    for bar, m in zip(bars, models, strict=True):
        axis.annotate(
            f"{m['test_accuracy']:.4f}\n{m['parameters']:,} params\n"
            f"{m['file_bytes'] / 1024:,.0f} KiB",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=9,
        )
    low = min(accuracies)
    axis.set_ylim(max(0.0, low - 0.1), 1.0 + (1.0 - low) * 0.6)
    axis.set(
        ylabel="test accuracy", title=f"Accuracy and size on {run['dataset']}"
    )
    fig.tight_layout()
    _save(fig, path)


def _confusion(run, path):
    matrix = np.array(run["confusion_matrix"])
    fig, axis = plt.subplots(figsize=(6, 5.5))
    image = axis.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        axis.text(
            j,
            i,
            str(count),
            ha="center",
            va="center",
            fontsize=7,
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
    _save(fig, path)


def write_report(run_dir):
    """Writes the PNG plots and `report.md` of `run_dir`; returns paths."""
    run_dir = Path(run_dir)
    run = read_run(run_dir)
    paths = [run_dir / name for name in PLOTS]
    for draw, path in zip(
        (_curves, _comparison, _confusion), paths, strict=True
    ):
        draw(run, path)
    settings = ", ".join(f"{k}={v}" for k, v in run["settings"].items())
    markdown = [
        f"# Distillation on {run['dataset']}",
        "",
        f"Settings: {settings}.",
        "",
        table(run),
        "",
        *(f"![{path.stem}]({path.name})" for path in paths),
    ]
    report = run_dir / "report.md"
    with atomic_path(report, overwrite=True) as tmp:
        Path(tmp).write_text("\n".join(markdown) + "\n")
    return [report, *paths]
