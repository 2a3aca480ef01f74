"""Every distillation method on Fashion-MNIST, tuned on validation data.

The fixed teacher is `saved_models/fashion_mnist_cnn_teacher.h5`; the student
is `kd_keras.models.cnn_student`. Data: the first `--samples` training
images, of which a validation split is carved (`kd_keras.protocol.split`);
every label is used. Every model stops when its validation accuracy has not
improved for `--patience` epochs (at most `--epochs`; Adam 1e-3) and keeps
its best epoch, so the scratch student has converged and no method is cut
short.

Each method gets a small grid on seed 0: the Distiller's `alpha` (0.1,
0.5), and its own main knob (temperature, or the weight of its term); the
setting with the best validation accuracy is then trained on seeds 1 and 2
too. The test set is scored once per seed, for the chosen setting only.
Every seed starts every method from the same initial student.

Writes `benchmarks/RESULTS.md`: test accuracy (mean ± std over the
seeds), the paired difference with the scratch student, the share of the
teacher-scratch gap closed, agreement with the teacher, seconds per epoch
(every model a scheme trains counted), and the validation grid.

The results of each method are also kept in `RESULTS.json` beside the
output as soon as it is done: a run stopped part-way, started again with
the same arguments, resumes at the next method (delete the file to start
over).

Run: `.venv/bin/python benchmarks/methods.py` (about 4 hours on 2 cores).
"""

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kd_keras  # noqa: E402
from kd_keras import (  # noqa: E402
    chains,
    datasets,
    files,
    function_matching,
    methods,
    models,
    mutual,
    teachers,
)
from kd_keras.app import evaluation, protocol  # noqa: E402

TEACHER = (
    Path(__file__).parents[1]
    / "saved_models"
    / ("fashion_mnist_cnn_teacher.h5")
)
ALPHAS = (0.1, 0.5)
# Layers of kd_keras.models.cnn_teacher / cnn_student.
BLOCK, EMBEDDING = "pool_1", "dense"
# name: (description, its knob, the knob's values, whether alpha applies)
METHODS = {
    "scratch": ("student alone, cross-entropy", None, (None,), False),
    "kd": ("Hinton KD", "T", (2.0, 4.0), True),
    "dkd": (
        "DKD (tckd_weight=1, warm-up 1 epoch)",
        "nckd_weight",
        (2.0, 8.0),
        True,
    ),
    "dist": ("DIST (beta=gamma=1)", "T", (1.0, 4.0), True),
    "fitnet": (f"FitNets hint on {BLOCK}", "weight", (10.0, 100.0), True),
    "at": (f"attention transfer on {BLOCK}", "weight", (100.0, 1000.0), True),
    "rkd": (
        f"RKD on {EMBEDDING} (25 distance, 50 angle)",
        "weight",
        (1.0, 10.0),
        True,
    ),
    "kd+at": ("KD (T=4) + attention transfer (1000)", None, (None,), True),
    "multi_teacher": (
        "KD (T=4) from the CNN teacher + an MLP 3x256 (averaged probabilities)",
        None,
        (None,),
        True,
    ),
    "born_again": ("born-again, 2nd generation, KD (T=4)", None, (None,), True),
    "takd": (
        "TAKD: teacher -> CNN 16-32+64 assistant -> student, KD (T=4)",
        None,
        (None,),
        True,
    ),
    "dml": (
        "deep mutual learning, 2 students, no teacher",
        "T",
        (1.0, 4.0),
        False,
    ),
    "function_matching": (
        "function matching: shifts + mixup, no labels",
        "T",
        (1.0, 4.0),
        False,
    ),
}
LOSS_METHODS = {
    "kd": ("kd", {}),
    "dkd": ("dkd", {"warmup": 1}),
    "dist": ("dist", {}),
    "fitnet": ("fitnet", {"teacher_layer": BLOCK, "student_layer": BLOCK}),
    "at": ("at", {"teacher_layer": BLOCK, "student_layer": BLOCK}),
    "rkd": ("rkd", {"teacher_layer": EMBEDDING, "student_layer": EMBEDDING}),
}


def adam():
    return keras.optimizers.Adam(1e-3)


def crossentropy():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


class Budget:
    """`fit` arguments: early stopping on the validation split."""

    def __init__(self, args, validation):
        self.args, self.validation = args, validation

    def __call__(self, monitor="val_accuracy"):
        stop = keras.callbacks.EarlyStopping(
            monitor,
            patience=self.args.patience,
            mode="max",
            restore_best_weights=True,
        )
        return {
            "epochs": self.args.epochs,
            "batch_size": self.args.batch_size,
            "validation_data": self.validation,
            "callbacks": [stop],
            "verbose": 0,
        }


def distill(teacher, student, x, y, fit, losses, weights, alpha, temperature):
    distiller = kd_keras.Distiller(
        teacher,
        student,
        distillation_loss=losses,
        distillation_loss_weights=weights,
        alpha=alpha,
        temperature=temperature,
    )
    distiller.compile(adam(), metrics=["accuracy"])
    return [len(distiller.fit(x, y, **fit()).history["loss"])]


def train(name, knob, alpha, teacher, student, x, y, fit, seed, extra):
    """Trains `student` with method `name`; returns each model's epochs."""
    temperature = knob if METHODS[name][1] == "T" else 4.0
    if name == "scratch":
        student.compile(adam(), crossentropy(), metrics=["accuracy"])
        return [len(student.fit(x, y, **fit()).history["loss"])]
    if name in LOSS_METHODS:
        method, parameters = LOSS_METHODS[name]
        if METHODS[name][1] in ("nckd_weight", "weight"):
            parameters = {**parameters, METHODS[name][1]: knob}
        losses, weights = methods.distillation_losses(
            method, temperature, **parameters
        )
        return distill(
            teacher, student, x, y, fit, losses, weights, alpha, temperature
        )
    if name == "kd+at":
        losses = [
            kd_keras.losses.KD(4.0),
            kd_keras.losses.AttentionTransfer(BLOCK, BLOCK),
        ]
        return distill(
            teacher, student, x, y, fit, losses, [1, 1000], alpha, 4.0
        )
    if name == "multi_teacher":
        both = teachers.ensemble([teacher, extra["mlp_teacher"]])
        return distill(both, student, x, y, fit, None, None, alpha, 4.0)
    chain = {
        "compile_kwargs": {"optimizer": "adam", "metrics": ["accuracy"]},
        "fit_kwargs": fit(),
        "distiller_kwargs": {"alpha": alpha, "temperature": 4.0},
    }
    if name in ("born_again", "takd"):
        if name == "born_again":
            trained, histories = chains.born_again(
                teacher, student, 2, x, y, **chain
            )
        else:
            assistant = models.cnn(x.shape[1:], 10, (16, 32), 64, "assistant")
            trained, histories = chains.teacher_assistant_chain(
                teacher, [assistant], student, x, y, **chain
            )
        student.set_weights(trained[-1].get_weights())
        return [len(h.history["loss"]) for h in histories]
    if name == "dml":
        # Another seed: a peer starting from the student's own weights
        # would make the same predictions, and teach it nothing.
        keras.utils.set_random_seed(seed + 1000)
        peer = models.cnn(x.shape[1:], 10, (8, 16), 32, "cnn_student_peer")
        cohort = mutual.MutualLearning([student, peer], temperature=temperature)
        cohort.compile(adam(), metrics=["accuracy"])
        history = cohort.fit(x, y, **fit(f"val_{student.name}_accuracy"))
        return [len(history.history["loss"])] * 2
    if name == "function_matching":
        shifts = keras.layers.RandomTranslation(0.1, 0.1, seed=seed)
        matcher = function_matching.FunctionMatching(
            teacher,
            student,
            augmentation=shifts,
            temperature=temperature,
            seed=seed,
        )
        matcher.compile(adam(), metrics=["accuracy"])
        return [len(matcher.fit(x, y, **fit()).history["loss"])]
    raise ValueError(f"Unknown method {name!r}")


def grid(name):
    _, _, knobs, uses_alpha = METHODS[name]
    return list(itertools.product(knobs, ALPHAS if uses_alpha else (None,)))


class Progress:
    """The methods done so far, in a JSON file beside `--output`."""

    SETTINGS = ("seeds", "epochs", "patience", "samples", "batch_size")

    def __init__(self, args):
        self.path = Path(args.output).with_suffix(".json")
        self.settings = {key: getattr(args, key) for key in self.SETTINGS}
        self.rows, self.mlp_accuracy, self.seconds = {}, None, 0.0
        self.started = time.perf_counter()
        if not self.path.exists():
            return
        saved = json.loads(self.path.read_text())
        if saved["settings"] != self.settings:
            print(f"{self.path} is of a run with other settings: starting over")
            return
        self.rows = {
            name: {
                "grid": {tuple(s): value for *s, value in row["grid"]},
                "chosen": tuple(row["chosen"]),
                "seeds": {int(s): r for s, r in row["seeds"].items()},
            }
            for name, row in saved["methods"].items()
        }
        self.mlp_accuracy = saved["mlp_accuracy"]
        self.seconds = saved["seconds"]
        print(f"Resuming {self.path}: {', '.join(self.rows)} done")

    def elapsed(self):
        """Seconds of the run, its earlier parts included."""
        return self.seconds + time.perf_counter() - self.started

    def save(self, name, row):
        """Adds method `name`'s `row`."""
        self.rows[name] = row
        methods = {
            name: {
                "grid": [[*s, value] for s, value in row["grid"].items()],
                "chosen": list(row["chosen"]),
                "seeds": row["seeds"],
            }
            for name, row in self.rows.items()
        }
        saved = {
            "settings": self.settings,
            "methods": methods,
            "mlp_accuracy": self.mlp_accuracy,
            "seconds": self.elapsed(),
        }
        with files.atomic_path(self.path, overwrite=True) as tmp:
            Path(tmp).write_text(json.dumps(saved, indent=1))


def run(args, progress):
    arrays = datasets.load("fashion_mnist")
    (x, y), test = arrays
    subset = ((x[: args.samples], y[: args.samples]), test)
    (x, y), validation, _ = protocol.split(subset, None, 0)
    fit = Budget(args, validation)
    teacher = kd_keras.load_student(TEACHER)
    extra = {}
    to_run = [name for name in args.methods if name not in progress.rows]
    if "multi_teacher" in to_run:
        keras.utils.set_random_seed(0)
        extra["mlp_teacher"] = models.mlp_teacher(x.shape[1:], 10)
        extra["mlp_teacher"].compile(adam(), crossentropy())
        extra["mlp_teacher"].fit(
            x, y, epochs=10, batch_size=args.batch_size, verbose=0
        )
        progress.mlp_accuracy = float(
            evaluation.accuracy(extra["mlp_teacher"], *test)
        )
    results = {name: {"grid": {}, "seeds": {}} for name in args.methods}
    results.update(
        (name, row) for name, row in progress.rows.items() if name in results
    )

    def trial(name, setting, seed):
        keras.utils.set_random_seed(seed)
        initial = models.cnn_student(x.shape[1:], 10)
        student = keras.models.clone_model(initial)
        student.set_weights(initial.get_weights())
        keras.utils.set_random_seed(seed)
        start = time.perf_counter()
        epochs = train(name, *setting, teacher, student, x, y, fit, seed, extra)
        seconds = (time.perf_counter() - start) / sum(epochs)
        return student, seconds, epochs

    for name in to_run:
        row = results[name]
        trained = {}
        for setting in grid(name):
            trained[setting] = trial(name, setting, 0)
            row["grid"][setting] = evaluation.accuracy(
                trained[setting][0], *validation
            )
            print(f"{name} {setting}: val {row['grid'][setting]:.4f}")
        row["chosen"] = max(row["grid"], key=row["grid"].get)
        for seed in range(args.seeds):
            if seed == 0:
                student, seconds, epochs = trained[row["chosen"]]
            else:
                student, seconds, epochs = trial(name, row["chosen"], seed)
            row["seeds"][seed] = {
                "test": float(evaluation.accuracy(student, *test)),
                "agreement": float(
                    evaluation.agreement(teacher, student, test[0])
                ),
                "seconds": seconds,
                "epochs": epochs,
            }
            print(f"{name} seed {seed}: {row['seeds'][seed]}", flush=True)
        progress.save(name, row)
    teacher_accuracy = evaluation.accuracy(teacher, *test)
    return results, teacher_accuracy, progress.mlp_accuracy, len(y)


def setting_text(name, setting):
    knob_name = METHODS[name][1]
    knob, alpha = setting
    parts = [f"{knob_name}={knob:g}"] if knob_name else []
    if alpha is not None:
        parts.append(f"alpha={alpha:g}")
    return ", ".join(parts) or "—"


def write(run_result, args, seconds):
    results, teacher_accuracy, mlp_accuracy, samples = run_result
    seeds = range(args.seeds)

    def tests(name):
        return np.array([results[name]["seeds"][s]["test"] for s in seeds])

    scratch = tests("scratch")
    lines = [
        "# Distillation methods on Fashion-MNIST",
        "",
        "Teacher: `saved_models/fashion_mnist_cnn_teacher.h5` (CNN, 390,410 "
        f"parameters, test accuracy {teacher_accuracy:.4f}; trained on all "
        "60,000 training images). Student: `kd_keras.models.cnn_student` "
        "(CNN 8-16 filters + 32 units, 26,698 parameters). Data: "
        f"{samples:,} of the first {args.samples:,} training images, every "
        "label; the other "
        f"{args.samples - samples:,} are the validation split. Every model "
        "stops when its validation accuracy has not improved for "
        f"{args.patience} epochs (at most {args.epochs}, batch "
        f"{args.batch_size}, Adam 1e-3) and keeps its best epoch. Settings "
        "chosen on the validation split (seed 0); test accuracy on the "
        f"10,000 test images, {args.seeds} seeds, mean ± std.",
        "",
        "| method | chosen setting | test accuracy | − scratch (paired) "
        "| gap closed | teacher agreement | s/epoch |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in results.items():
        accuracy = tests(name)
        if name == "scratch":
            gain = closed = ""
        else:
            differences = 100 * (accuracy - scratch)
            gain = f"{differences.mean():+.2f} ± {differences.std(ddof=1):.2f}"
            shares = (accuracy - scratch) / (teacher_accuracy - scratch)
            closed = f"{round(100 * shares.mean())}%"
        per_epoch = [row["seeds"][s]["seconds"] for s in seeds]
        lines.append(
            f"| {name}: {METHODS[name][0]} "
            f"| {setting_text(name, row['chosen'])} "
            f"| {accuracy.mean():.4f} ± {accuracy.std(ddof=1):.4f} "
            f"| {gain} | {closed} "
            f"| {np.mean([row['seeds'][s]['agreement'] for s in seeds]):.4f} "
            f"| {statistics.median(per_epoch):.1f} |"
        )
    lines += [
        "",
        "Validation accuracy of every setting tried (seed 0):",
        "",
        "| method | setting | validation accuracy |",
        "|---|---|---:|",
    ]
    for name, row in results.items():
        for setting, value in row["grid"].items():
            lines.append(
                f"| {name} | {setting_text(name, setting)} | {value:.4f} |"
            )
    if mlp_accuracy is not None:
        lines += [
            "",
            f"The MLP second teacher of `multi_teacher` reaches "
            f"{mlp_accuracy:.4f} on the test set.",
        ]
    lines += [
        "",
        f"Ran in {seconds / 60:.1f} min on {platform.machine()}, "
        f"{os.cpu_count()} CPU cores, TensorFlow {tf.__version__}, Keras "
        f"{keras.__version__}, {time.strftime('%Y-%m-%d')}, with "
        f"`python benchmarks/methods.py {' '.join(sys.argv[1:])}`.",
    ]
    Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--methods",
        type=lambda text: text.split(","),
        default=list(METHODS),
        help=f"comma-separated, from: {', '.join(METHODS)}",
    )
    parser.add_argument(
        "--output", default=Path(__file__).with_name("RESULTS.md")
    )
    args = parser.parse_args()
    unknown = set(args.methods) - set(METHODS)
    if unknown or "scratch" not in args.methods:
        parser.error(f"unknown methods {sorted(unknown)} or no scratch")
    progress = Progress(args)
    result = run(args, progress)
    write(result, args, progress.elapsed())


if __name__ == "__main__":
    main()
