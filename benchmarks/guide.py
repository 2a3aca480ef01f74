"""When does distillation help? The sweeps behind the guide.

The guide is docs/when_distillation_helps.md.

Fashion-MNIST, with the application's protocol (`kd_keras.app.protocol`):
a validation split carved from the training data, for early stopping
(patience 5, at most 40 epochs, the best epoch kept) and for choosing
settings; the test set scored once per trained student. The teachers are
trained on every training sample and its label: `cnn_teacher` (8 epochs)
and `mlp_teacher` (20 epochs). Students are MLPs (`mlp_student` is 1x128),
so a run takes about a minute with the teacher's outputs cached. Hinton KD
at the Distiller's defaults (T=4, alpha=0.1) unless said.

Experiments (each seed draws the labelled samples and the initial
weights):

- `labels`: 1%, 10% and 100% of the labels, seeds 0-2; scratch,
  pseudo-label and distilled twins (see `kd_keras.app.demo`).
- `grid`: T x alpha at 1% of the labels, seed 0: validation accuracy (a
  grid is for choosing, so the test set is left out).
- `gap`: teachers (MLP, CNN) x students (MLP 1x32, 1x128, 1x512), all
  labels, seed 0: the gain against the teacher-scratch gap.
- `augment`: all labels, seed 0: the student alone with random shifts,
  and function matching (the same shifts and mixup, the teacher run on
  every augmented batch, Beyer et al. 2022) against plain KD.
- `ensemble`: the two teachers averaged over logits or probabilities,
  all labels, seed 0.

Results accumulate in `benchmarks/guide_results.json` (a rerun skips what
is there); `--report` writes `benchmarks/GUIDE.md` and the plots in
`docs/images/`.

Run: `.venv/bin/python benchmarks/guide.py` (about 1.5 hours on 2 cores),
then `.venv/bin/python benchmarks/guide.py --report`.
"""

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kd_keras  # noqa: E402
from kd_keras import datasets, models  # noqa: E402
from kd_keras.app import evaluation, protocol  # noqa: E402

HERE = Path(__file__).parent
RESULTS = HERE / "guide_results.json"
IMAGES = HERE.parent / "docs" / "images"
SEEDS = (0, 1, 2)
SETTINGS = {"epochs": 40, "patience": 5, "batch_size": 128}
DEFAULT_T, DEFAULT_ALPHA = 4.0, 0.1
FRACTIONS = (0.01, 0.1, 1.0)
TEMPERATURES = (1.0, 2.0, 4.0, 8.0)
ALPHAS = (0.1, 0.5)
STUDENT_WIDTHS = (32, 128, 512)


class Experiments:
    """Trains what is not in the results file yet, and records it."""

    def __init__(self, teacher_dir):
        self.results = (
            json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        )
        self.arrays = datasets.load("fashion_mnist")
        self.test = self.arrays[1]
        self.teacher_dir = Path(teacher_dir)
        self._teachers = {}

    def teacher(self, name):
        """`"cnn"` or `"mlp"`, trained once and kept in `teacher_dir`."""
        if name not in self._teachers:
            path = self.teacher_dir / f"fashion_mnist_{name}_teacher.keras"
            if path.exists():
                teacher = keras.models.load_model(path)
            else:
                train, validation, _ = self.split(None, 0)
                teacher = protocol.train_teacher(
                    (train, validation),
                    name,
                    epochs=8 if name == "cnn" else 20,
                    batch_size=128,
                )
                path.parent.mkdir(parents=True, exist_ok=True)
                teacher.save(path)
            self._teachers[name] = teacher
            self.results[f"teacher|{name}"] = {
                "test": evaluation.accuracy(teacher, *self.test)
            }
        return self._teachers[name]

    def split(self, fraction, seed):
        labels = None if fraction in (None, 1.0) else fraction
        if labels is not None:
            labels = round(labels * len(self.arrays[0][1]))
        return protocol.split(self.arrays, labels, seed)

    def record(self, key, train):
        """`train()` -> `(student, history)`, run unless `key` is known."""
        if key in self.results:
            return self.results[key]
        start = time.perf_counter()
        student, history, validation = train()
        self.results[key] = {
            "validation": evaluation.accuracy(student, *validation),
            "test": evaluation.accuracy(student, *self.test),
            "val_accuracy": history["val_accuracy"],
            "seconds": time.perf_counter() - start,
        }
        RESULTS.write_text(json.dumps(self.results, indent=1) + "\n")
        print(
            key,
            {k: v for k, v in self.results[key].items() if k != "val_accuracy"},
        )
        return self.results[key]

    def twin(self, role, fraction, seed, teacher="cnn", width=128, **settings):
        key = f"{role}|labels={fraction}|teacher={teacher}|width={width}"
        key += "".join(f"|{k}={v}" for k, v in sorted(settings.items()))
        key += f"|seed={seed}"

        def train():
            data = self.split(fraction, seed)
            initial = student(width, seed)
            config = {
                **SETTINGS,
                "temperature": DEFAULT_T,
                "alpha": DEFAULT_ALPHA,
                **settings,
            }
            model, history = protocol.train_student(
                role, initial, self.teacher(teacher), data, config, seed
            )
            return model, history, data[1]

        return self.record(key, train)

    def run_labels(self):
        for fraction in FRACTIONS:
            for seed in SEEDS:
                for role in ("student_scratch", "student_distilled"):
                    self.twin(role, fraction, seed)
                if fraction < 1:
                    self.twin("student_pseudo", fraction, seed)

    def run_grid(self):
        for fraction in (0.01,):
            for temperature in TEMPERATURES:
                for alpha in ALPHAS:
                    self.twin(
                        "student_distilled",
                        fraction,
                        0,
                        temperature=temperature,
                        alpha=alpha,
                    )

    def run_gap(self):
        for width in STUDENT_WIDTHS:
            self.twin("student_scratch", 1.0, 0, width=width)
            for teacher in ("mlp", "cnn"):
                self.twin("student_distilled", 1.0, 0, teacher, width)

    def run_augment(self):
        shift = keras.layers.RandomTranslation(0.1, 0.1, seed=0)

        def alone():
            train, validation, _ = self.split(1.0, 0)
            model = student(128, 0)
            augmented = keras.Sequential([shift, model])
            augmented.compile(
                "adam",
                keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"],
            )
            history = fit(augmented, *train, validation)
            return model, history, validation

        def matching():
            train, validation, _ = self.split(1.0, 0)
            model = student(128, 0)
            distiller = kd_keras.FunctionMatching(
                self.teacher("cnn"), model, shift, temperature=1.0, seed=0
            )
            distiller.compile("adam", metrics=["accuracy"])
            history = fit(distiller, train[0], None, validation)
            return model, history, validation

        self.twin("student_scratch", 1.0, 0)
        self.twin("student_distilled", 1.0, 0)
        self.record("scratch_shifted|seed=0", alone)
        self.record("function_matching|seed=0", matching)

    def run_ensemble(self):
        for average in ("logits", "probabilities"):

            def train(average=average):
                data = self.split(1.0, 0)
                ensemble = kd_keras.teachers.ensemble(
                    [self.teacher("cnn"), self.teacher("mlp")],
                    average=average,
                )
                config = {
                    **SETTINGS,
                    "temperature": DEFAULT_T,
                    "alpha": DEFAULT_ALPHA,
                }
                model, history = protocol.train_student(
                    "student_distilled", student(128, 0), ensemble, data, config
                )
                return model, history, data[1]

            self.record(f"ensemble|average={average}|seed=0", train)


def student(width, seed):
    keras.utils.set_random_seed(seed)
    return models.mlp((28, 28, 1), 10, (width,), name="student")


def fit(model, x, y, validation, patience=10):
    keras.utils.set_random_seed(0)
    stop = keras.callbacks.EarlyStopping(
        "val_accuracy", patience=patience, mode="max", restore_best_weights=True
    )
    return model.fit(
        x,
        y,
        epochs=SETTINGS["epochs"],
        batch_size=SETTINGS["batch_size"],
        validation_data=validation,
        callbacks=[stop],
        verbose=0,
    ).history


# --- The report --------------------------------------------------------


def mean_std(values):
    values = list(values)
    return statistics.mean(values), (
        statistics.stdev(values) if len(values) > 1 else 0.0
    )


def _get(
    results,
    role,
    fraction=1.0,
    teacher="cnn",
    width=128,
    seeds=SEEDS,
    **settings,
):
    key = f"{role}|labels={fraction}|teacher={teacher}|width={width}"
    key += "".join(f"|{k}={v}" for k, v in sorted(settings.items()))
    return [results[f"{key}|seed={seed}"] for seed in seeds]


def _pm(values, scale=100.0, digits=2):
    mean, std = mean_std(v * scale for v in values)
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def figure(*grid, size):
    """A matplotlib figure and its axes, without pyplot's global state."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    return fig, fig.subplots(*grid)


def save(fig, name):
    """Writes `docs/images/<name>.png`."""
    fig.tight_layout()
    fig.savefig(IMAGES / f"{name}.png", dpi=100)


def report(results):
    IMAGES.mkdir(parents=True, exist_ok=True)
    teacher_test = {
        name: results[f"teacher|{name}"]["test"] for name in ("cnn", "mlp")
    }
    lines = [
        "# When does distillation help? The measurements",
        "",
        "Written by `benchmarks/guide.py`; read with "
        "[docs/when_distillation_helps.md](../docs/when_distillation_helps.md)."
        " Fashion-MNIST; test accuracy in %, mean ± std over seeds 0-2 "
        "unless said. Teachers' test accuracy: CNN "
        f"{100 * teacher_test['cnn']:.2f}, MLP 3x256 "
        f"{100 * teacher_test['mlp']:.2f}.",
        "",
        "## Labels",
        "",
        "| labels | scratch | pseudo-labels | distilled (T=4, alpha=0.1) "
        "| distilled − scratch | gap closed |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    gains = {}
    for fraction in FRACTIONS:
        scratch = [
            r["test"] for r in _get(results, "student_scratch", fraction)
        ]
        distilled = [
            r["test"] for r in _get(results, "student_distilled", fraction)
        ]
        pseudo = (
            _pm([r["test"] for r in _get(results, "student_pseudo", fraction)])
            if fraction < 1
            else "—"
        )
        gain = [d - s for d, s in zip(distilled, scratch, strict=True)]
        gains[fraction] = gain
        closed = [
            (d - s) / (teacher_test["cnn"] - s)
            for d, s in zip(distilled, scratch, strict=True)
        ]
        lines.append(
            f"| {fraction:.0%} | {_pm(scratch)} | {pseudo} "
            f"| {_pm(distilled)} | {_pm(gain)} | {_pm(closed, digits=0)}% |"
        )
    fig, axis = figure(size=(5, 3.5))
    means = [100 * statistics.mean(gains[f]) for f in FRACTIONS]
    stds = [100 * statistics.stdev(gains[f]) for f in FRACTIONS]
    axis.errorbar(
        [100 * f for f in FRACTIONS], means, yerr=stds, marker="o", capsize=4
    )
    axis.axhline(0, color="black", lw=0.8)
    axis.set(
        xscale="log",
        xticks=[100 * f for f in FRACTIONS],
        xticklabels=[f"{f:.0%}" for f in FRACTIONS],
        xlabel="labelled share of the training set (log scale)",
        ylabel="distilled − scratch (points)",
        title="Gain against the share of labels",
    )
    axis.grid(alpha=0.3)
    save(fig, "when_labels")

    lines += [
        "",
        "## T and alpha (validation accuracy, seed 0)",
        "",
    ]
    fig, axis = figure(size=(3.8, 3.5))
    for fraction in (0.01,):
        scratch = _get(results, "student_scratch", fraction, seeds=(0,))[0]
        grid = np.array(
            [
                [
                    _get(
                        results,
                        "student_distilled",
                        fraction,
                        seeds=(0,),
                        alpha=a,
                        temperature=t,
                    )[0]["validation"]
                    - scratch["validation"]
                    for a in ALPHAS
                ]
                for t in TEMPERATURES
            ]
        )
        lines += [
            f"{fraction:.0%} of the labels: distilled − scratch on the "
            f"validation split, points (scratch: "
            f"{100 * scratch['validation']:.2f}).",
            "",
            "| T | " + " | ".join(f"alpha={a:g}" for a in ALPHAS) + " |",
            "|---:|" + "---:|" * len(ALPHAS),
            *(
                f"| {t:g} | "
                + " | ".join(f"{100 * v:+.2f}" for v in row)
                + " |"
                for t, row in zip(TEMPERATURES, grid, strict=True)
            ),
            "",
        ]
        # Colours from no gain to the largest: on a fixed ±3 scale gains
        # of +9 were one saturated blue, and a scale from the smallest
        # gain would magnify differences within the seeds' noise.
        largest = 100 * max(grid.max(), 0.0)
        image = axis.imshow(100 * grid, cmap="Blues", vmin=0, vmax=largest)
        middle = largest / 2
        for (i, j), value in np.ndenumerate(100 * grid):
            axis.text(
                j,
                i,
                f"{value:+.1f}",
                ha="center",
                va="center",
                color="white" if value > middle else "black",
            )
        axis.set(
            xticks=range(len(ALPHAS)),
            xticklabels=[f"{a:g}" for a in ALPHAS],
            yticks=range(len(TEMPERATURES)),
            yticklabels=[f"{t:g}" for t in TEMPERATURES],
            xlabel="alpha (weight of the labels)",
            ylabel="T",
            title=f"{fraction:.0%} of the labels",
        )
    fig.colorbar(image, ax=axis, label="distilled − scratch (validation)")
    save(fig, "when_t_alpha")

    lines += [
        "## Teacher-student gap (all labels, seed 0)",
        "",
        "| teacher | student | scratch | distilled | distilled − scratch "
        "| teacher − scratch |",
        "|---|---|---:|---:|---:|---:|",
    ]
    fig, axis = figure(size=(5, 3.5))
    for teacher, marker in (("mlp", "s"), ("cnn", "o")):
        for width in STUDENT_WIDTHS:
            (scratch,) = _get(
                results, "student_scratch", width=width, seeds=(0,)
            )
            (distilled,) = _get(
                results,
                "student_distilled",
                teacher=teacher,
                width=width,
                seeds=(0,),
            )
            gain = 100 * (distilled["test"] - scratch["test"])
            gap = 100 * (teacher_test[teacher] - scratch["test"])
            lines.append(
                f"| {teacher.upper()} | MLP 1x{width} "
                f"| {100 * scratch['test']:.2f} "
                f"| {100 * distilled['test']:.2f} | {gain:+.2f} | {gap:+.2f} |"
            )
            axis.plot(
                gap,
                gain,
                marker=marker,
                color="tab:blue" if teacher == "cnn" else "tab:orange",
                ls="none",
                label=f"{teacher.upper()} teacher" if width == 32 else None,
            )
            axis.annotate(
                f"1x{width}",
                (gap, gain),
                textcoords="offset points",
                xytext=(5, 5),
                fontsize=8,
            )
    axis.axhline(0, color="black", lw=0.8)
    axis.axvline(0, color="black", lw=0.8)
    axis.margins(0.15)  # room for the labels of the outermost points
    axis.set(
        xlabel="teacher − scratch student (points)",
        ylabel="distilled − scratch (points)",
        title="Gain against the teacher's lead (all labels)",
    )
    axis.legend()
    axis.grid(alpha=0.3)
    save(fig, "when_gap")

    fig, axes = figure(1, 2, size=(9, 3.5))
    for axis, fraction in zip(axes, (0.01, 1.0), strict=True):
        for role, color, style in (
            ("student_scratch", "tab:gray", "--"),
            ("student_pseudo", "tab:green", ":"),
            ("student_distilled", "tab:blue", "-"),
        ):
            if role == "student_pseudo" and fraction == 1.0:
                continue
            curve = _get(results, role, fraction, seeds=(0,))[0]["val_accuracy"]
            axis.plot(
                range(1, len(curve) + 1),
                curve,
                color=color,
                ls=style,
                label=role.removeprefix("student_"),
            )
        axis.set(
            xlabel="epoch",
            ylabel="validation accuracy",
            title=f"{fraction:.0%} of the labels (seed 0)",
        )
        axis.grid(alpha=0.3)
        axis.legend()
    save(fig, "when_epochs")

    scratch = results["student_scratch|labels=1.0|teacher=cnn|width=128|seed=0"]
    distilled = results[
        "student_distilled|labels=1.0|teacher=cnn|width=128|seed=0"
    ]
    lines += [
        "",
        "## Augmentation and function matching (all labels, seed 0)",
        "",
        "| student | test | validation | epochs kept | seconds |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, result in (
        ("scratch", scratch),
        ("scratch, random shifts", results["scratch_shifted|seed=0"]),
        ("distilled (KD, cached)", distilled),
        (
            "function matching (shifts + mixup, T=1, no labels)",
            results["function_matching|seed=0"],
        ),
    ):
        best = int(np.argmax(result["val_accuracy"])) + 1
        lines.append(
            f"| {name} | {100 * result['test']:.2f} "
            f"| {100 * result['validation']:.2f} | {best} "
            f"| {result['seconds']:.0f} |"
        )
    lines += [
        "",
        "## Two teachers averaged (all labels, seed 0)",
        "",
        "| teachers | distilled (T=4, alpha=0.1) |",
        "|---|---:|",
        f"| CNN alone | {100 * distilled['test']:.2f} |",
    ]
    for average in ("logits", "probabilities"):
        result = results[f"ensemble|average={average}|seed=0"]
        lines.append(
            f"| CNN and MLP, averaged {average} | {100 * result['test']:.2f} |"
        )
    lines += [
        "",
        f"Measured on {platform.machine()}, {os.cpu_count()} CPU cores, "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}.",
    ]
    (HERE / "GUIDE.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {HERE / 'GUIDE.md'} and {IMAGES}/when_*.png")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--experiments",
        default="labels,grid,gap,augment,ensemble",
        help="comma-separated (default: all)",
    )
    parser.add_argument(
        "--teacher-dir",
        default=str(HERE.parent / "runs" / "guide_teachers"),
        help="where the trained teachers are kept between runs",
    )
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args(argv)
    if args.report:
        report(json.loads(RESULTS.read_text()))
        return
    experiments = Experiments(args.teacher_dir)
    for name in args.experiments.split(","):
        getattr(experiments, f"run_{name}")()


if __name__ == "__main__":
    main()
