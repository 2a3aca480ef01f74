"""A distillation search: the teacher once, or in every trial.

The same KerasTuner random search (same seed, so the same trials) runs
twice on Fashion-MNIST, under a wide MLP teacher (2x3000, untrained: the
cost is what is measured) and a 1x128 student:

- `kd_keras.tune`: the teacher's outputs on the training and validation
  inputs are computed once, before the first trial;
- `kd_keras.tune(cache=False)`: the teacher runs at every step of every
  trial, as in KerasTuner over a plain `Distiller` without a cache.

The bound is what no search can beat: the trials' student fits alone (the
same student trained on the labels for the same epochs, once per trial)
plus one teacher pass over the training and validation inputs.

Writes `benchmarks/TUNING.md`. Run: `.venv/bin/python benchmarks/tuning.py`
(about 15 minutes on 2 cores); `--trials`, `--epochs`, `--samples`.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from speed import load_data, machine  # noqa: E402

from kd_keras import models, tuning  # noqa: E402

BATCH_SIZE = 128


def pair(input_shape):
    teacher = models.mlp(input_shape, 10, (3000, 3000), name="wide_teacher")
    return teacher, (lambda hp: models.mlp(input_shape, 10, (128,)))


def seconds(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def search(teacher, student_fn, data, trials, epochs, folder, cache):
    """`kd_keras.tune`'s random search; `cache=False` runs the teacher at
    every step of every trial."""
    (x, y), validation = data
    return tuning.tune(
        teacher,
        student_fn,
        x,
        y,
        validation_data=validation,
        max_trials=trials,
        epochs=epochs,
        batch_size=BATCH_SIZE,
        cache=cache,
        directory=folder,
        project_name=f"cache_{cache}",
        verbose=0,
    )


def bound_seconds(teacher, student_fn, data, trials, epochs):
    """`(students, teacher pass)`: `trials` student fits on the labels
    alone, and one teacher pass over the training and validation inputs."""
    (x, y), (x_val, y_val) = data
    students = 0.0
    for _ in range(trials):
        student = student_fn(None)
        student.compile(
            "adam",
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        students += seconds(
            lambda s=student: s.fit(
                x,
                y,
                epochs=epochs,
                batch_size=BATCH_SIZE,
                validation_data=(x_val, y_val),
                verbose=0,
            )
        )
    teacher_pass = seconds(
        lambda: [
            teacher.predict(a, batch_size=4 * BATCH_SIZE, verbose=0)
            for a in (x, x_val)
        ]
    )
    return students, teacher_pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--samples", type=int, default=12000)
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).with_name("TUNING.md")
    )
    args = parser.parse_args()
    x, y, source = load_data(args.samples)
    x = x.reshape(len(x), -1)
    held = len(x) // 6
    data = (x[held:], y[held:]), (x[:held], y[:held])
    keras.utils.set_random_seed(0)
    teacher, student_fn = pair(x.shape[1:])
    times = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, cache in (("online", False), ("cached", None)):
            times[name] = seconds(
                lambda c=cache: search(
                    teacher,
                    student_fn,
                    data,
                    args.trials,
                    args.epochs,
                    folder,
                    c,
                )
            )
            print(f"{name}: {times[name]:.0f} s", flush=True)
    students, teacher_pass = bound_seconds(
        teacher, student_fn, data, args.trials, args.epochs
    )
    bound = students + teacher_pass
    lines = [
        "# Tuning: the teacher paid once",
        "",
        f"Written by `benchmarks/tuning.py` on {time.strftime('%Y-%m-%d')}: "
        f"{machine()}.",
        "",
        f"A KerasTuner random search of {args.trials} trials of "
        f"{args.epochs} epochs (T, alpha, learning rate; the same seed, so "
        f"the same trials) on {len(data[0][1]):,} training and "
        f"{len(data[1][1]):,} validation images of {source}, batch "
        f"{BATCH_SIZE}: a wide MLP teacher (2x3000, "
        f"{teacher.count_params():,} parameters) and a 1x128 student.",
        "",
        "| search | seconds | ÷ kd_keras.tune |",
        "|---|---:|---:|",
        f"| `kd_keras.tune(cache=False)`: the teacher at every step, as "
        f"KerasTuner over a plain Distiller | {times['online']:.0f} | "
        f"{times['online'] / times['cached']:.2f} |",
        f"| `kd_keras.tune`: the teacher once | {times['cached']:.0f} | 1.00 |",
        f"| bound: {args.trials} student fits alone ({students:.0f} s) + one "
        f"teacher pass ({teacher_pass:.1f} s) | {bound:.0f} | "
        f"{bound / times['cached']:.2f} |",
        "",
        f"`kd_keras.tune` took {times['cached'] / bound:.2f} times the "
        f"bound; the search that runs the teacher in every trial took "
        f"{times['online'] / times['cached']:.2f} times as long as "
        "`kd_keras.tune`. What remains above the bound is per-trial work "
        "both searches pay: building and tracing a Distiller (about 2 s), "
        "KerasTuner's bookkeeping and checkpoint of the best epoch (the "
        "student's weights), and the distillation loss itself.",
        "",
    ]
    args.output.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    tf.get_logger().setLevel("ERROR")
    main()
