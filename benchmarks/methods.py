"""Every distillation method on Fashion-MNIST, with the same teacher and budget.

The fixed teacher is `saved_models/fashion_mnist_cnn_teacher.h5`; the student
is `kd_keras.models.cnn_student`. For each seed, every method starts from the
same initial student weights and trains with the same data (the first
`--samples` training images), epochs, batch size and optimizer (Adam,
learning rate 1e-3). Hyper-parameters are the papers' defaults, not tuned on
this data. Hinton KD uses the Distiller's defaults (`alpha=0.1`, `T=4`); the
other methods add their term to the cross-entropy as their papers do
(`alpha=0.5`: `0.5 * (CE + term)`, the same training as `CE + term` under
Adam, which does not see the loss's scale).

Writes `benchmarks/RESULTS.md`: test accuracy (mean ± std over the seeds),
the difference with the scratch student, agreement with the teacher, and
seconds per epoch (teacher passes included; schemes that train several
models count every model's epochs).

Run: `.venv/bin/python benchmarks/methods.py` (about 40 minutes on 2 cores).
"""

import argparse
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
    evaluation,
    function_matching,
    methods,
    models,
    mutual,
    teachers,
)

TEACHER = (
    Path(__file__).parents[1]
    / "saved_models"
    / ("fashion_mnist_cnn_teacher.h5")
)
TEMPERATURE = 4.0
# Layers of kd_keras.models.cnn_teacher / cnn_student.
BLOCK, EMBEDDING = "pool_1", "dense"
LOSS_METHODS = {
    # name: (kd_keras.methods name, its parameters, alpha)
    "kd": ("kd", {}, 0.1),
    "dkd": ("dkd", {}, 0.5),
    "dist": ("dist", {}, 0.5),
    "fitnet": (
        "fitnet",
        {"teacher_layer": BLOCK, "student_layer": BLOCK},
        0.5,
    ),
    "at": ("at", {"teacher_layer": BLOCK, "student_layer": BLOCK}, 0.5),
    "rkd": (
        "rkd",
        {"teacher_layer": EMBEDDING, "student_layer": EMBEDDING},
        0.5,
    ),
}
DESCRIPTIONS = {
    "scratch": "student alone, cross-entropy",
    "kd": f"Hinton KD, T={TEMPERATURE:g}, alpha=0.1",
    "dkd": "DKD, alpha=1, beta=8, T=4, warm-up 1 epoch; + CE",
    "dist": "DIST, beta=gamma=1, tau=4; + CE",
    "fitnet": f"FitNets hint on {BLOCK} (1x1 conv adapter), weight 100; + CE",
    "at": f"attention transfer on {BLOCK}, weight 1000; + CE",
    "rkd": f"RKD on {EMBEDDING} (25 distance, 50 angle); + CE",
    "kd+at": "KD (T=4) + attention transfer (weight 1000), alpha=0.5",
    "multi_teacher": "KD from the CNN teacher + an MLP 3x256 trained here "
    "(averaged probabilities), T=4, alpha=0.1",
    "born_again": "born-again, 2nd generation (taught by the 1st, KD)",
    "takd": "TAKD: teacher -> CNN 16-32+64 assistant -> student, KD",
    "dml": "deep mutual learning, 2 students, no teacher (first student)",
    "function_matching": "function matching: shifts + mixup, KD T=1, no labels",
}


def fit_kwargs(args):
    return {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "verbose": 0,
        "shuffle": True,
    }


def adam():
    return keras.optimizers.Adam(1e-3)


def crossentropy():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def distill(teacher, student, x, y, args, losses, weights, alpha):
    distiller = kd_keras.Distiller(
        teacher,
        student,
        distillation_loss=losses,
        distillation_loss_weights=weights,
        alpha=alpha,
    )
    distiller.compile(adam())
    distiller.fit(x, y, **fit_kwargs(args))
    return student, 1


def train(name, teacher, initial, x, y, args, seed, extra):
    """`(trained student, number of models trained)` for method `name`."""
    student = keras.models.clone_model(initial)
    student.set_weights(initial.get_weights())
    if name == "scratch":
        student.compile(adam(), crossentropy())
        student.fit(x, y, **fit_kwargs(args))
        return student, 1
    if name in LOSS_METHODS:
        method, parameters, alpha = LOSS_METHODS[name]
        losses, weights = methods.distillation_losses(
            method, TEMPERATURE, **parameters
        )
        return distill(teacher, student, x, y, args, losses, weights, alpha)
    if name == "kd+at":
        losses = [
            kd_keras.losses.KD(TEMPERATURE),
            kd_keras.losses.AttentionTransfer(BLOCK, BLOCK),
        ]
        return distill(teacher, student, x, y, args, losses, [1, 1000], 0.5)
    if name == "multi_teacher":
        both = teachers.ensemble([teacher, extra["mlp_teacher"]])
        return distill(both, student, x, y, args, None, None, 0.1)
    chain = {
        "compile_kwargs": {"optimizer": adam()},
        "fit_kwargs": fit_kwargs(args),
    }
    if name == "born_again":
        trained, _ = chains.born_again(teacher, student, 2, x, y, **chain)
        return trained[-1], 2
    if name == "takd":
        assistant = models.cnn(x.shape[1:], 10, (16, 32), 64, "assistant")
        trained, _ = chains.teacher_assistant_chain(
            teacher, [assistant], student, x, y, **chain
        )
        return trained[-1], 2
    if name == "dml":
        peer = models.cnn(x.shape[1:], 10, (8, 16), 32, "cnn_student_peer")
        cohort = mutual.MutualLearning([student, peer])
        cohort.compile(adam())
        cohort.fit(x, y, **fit_kwargs(args))
        return student, 2
    if name == "function_matching":
        shifts = keras.layers.RandomTranslation(0.1, 0.1, seed=seed)
        matcher = function_matching.FunctionMatching(
            teacher, student, augmentation=shifts, temperature=1.0, seed=seed
        )
        matcher.compile(adam())
        matcher.fit(x, y, **fit_kwargs(args))
        return student, 1
    raise ValueError(f"Unknown method {name!r}")


def mlp_teacher(x, y, x_test, y_test):
    keras.utils.set_random_seed(0)
    model = models.mlp_teacher(x.shape[1:], 10)
    model.compile(adam(), crossentropy())
    model.fit(x, y, epochs=10, batch_size=128, verbose=0)
    return model, evaluation.accuracy(model, x_test, y_test)


def run(args):
    (x, y), (x_test, y_test) = datasets.load("fashion_mnist")
    x, y = x[: args.samples], y[: args.samples]
    teacher = kd_keras.load_student(TEACHER)
    extra = {}
    if "multi_teacher" in args.methods:
        extra["mlp_teacher"], extra["mlp_accuracy"] = mlp_teacher(
            x, y, x_test, y_test
        )
    results = {
        name: {"accuracy": [], "agreement": [], "epoch_s": []}
        for name in args.methods
    }
    for seed in range(args.seeds):
        keras.utils.set_random_seed(seed)
        initial = models.cnn_student(x.shape[1:], 10)
        for name in args.methods:
            keras.utils.set_random_seed(seed)
            start = time.perf_counter()
            student, trained = train(
                name, teacher, initial, x, y, args, seed, extra
            )
            seconds = time.perf_counter() - start
            row = results[name]
            row["accuracy"].append(evaluation.accuracy(student, x_test, y_test))
            row["agreement"].append(
                evaluation.agreement(teacher, student, x_test)
            )
            row["epoch_s"].append(seconds / (args.epochs * trained))
            print(
                f"seed {seed} {name}: accuracy {row['accuracy'][-1]:.4f}, "
                f"{row['epoch_s'][-1]:.1f} s/epoch",
                flush=True,
            )
    teacher_accuracy = evaluation.accuracy(teacher, x_test, y_test)
    return results, teacher_accuracy, extra.get("mlp_accuracy")


def write(results, teacher_accuracy, mlp_accuracy, args, seconds):
    scratch = np.array(results["scratch"]["accuracy"])
    lines = [
        "# Distillation methods on Fashion-MNIST",
        "",
        f"Teacher: `saved_models/fashion_mnist_cnn_teacher.h5` (CNN, "
        f"390,410 parameters, test accuracy {teacher_accuracy:.4f}). Student: "
        "`kd_keras.models.cnn_student` (CNN 8-16 filters + 32 units). "
        f"Training: the first {args.samples} training images, {args.epochs} "
        f"epochs, batch {args.batch_size}, Adam 1e-3, {args.seeds} seeds "
        "(each seed: the same initial student for every method). Test "
        "accuracy on the 10,000 test images. Hyper-parameters are the "
        "papers' defaults, not tuned here.",
        "",
        "| method | settings | test accuracy (mean ± std) | − scratch | "
        "teacher agreement | s/epoch |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, row in results.items():
        accuracy = np.array(row["accuracy"])
        gain = (
            "" if name == "scratch" else f"{np.mean(accuracy - scratch):+.4f}"
        )
        lines.append(
            f"| {name} | {DESCRIPTIONS[name]} | {accuracy.mean():.4f} ± "
            f"{accuracy.std():.4f} | {gain} | "
            f"{np.mean(row['agreement']):.4f} | "
            f"{statistics.median(row['epoch_s']):.1f} |"
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
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--methods",
        type=lambda text: text.split(","),
        default=list(DESCRIPTIONS),
        help=f"comma-separated, from: {', '.join(DESCRIPTIONS)}",
    )
    parser.add_argument(
        "--output", default=Path(__file__).with_name("RESULTS.md")
    )
    args = parser.parse_args()
    unknown = set(args.methods) - set(DESCRIPTIONS)
    if unknown or "scratch" not in args.methods:
        parser.error(f"unknown methods {sorted(unknown)} or no scratch")
    start = time.perf_counter()
    results, teacher_accuracy, mlp_accuracy = run(args)
    write(
        results,
        teacher_accuracy,
        mlp_accuracy,
        args,
        time.perf_counter() - start,
    )


if __name__ == "__main__":
    main()
