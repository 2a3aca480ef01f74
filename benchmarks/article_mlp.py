"""The article's case study: does distillation beat training from scratch?

The source article's pair: a teacher MLP 3x256 and a student MLP 1x128,
every label used. For each seed: the teacher, then the student from scratch
and, for each (temperature, alpha) setting, by Hinton KD, from the same
initial weights. The application's protocol (`kd_keras.app.protocol`): a
validation split carved from the training data; every student stops when
its validation accuracy has not improved for `--patience` epochs (at most
`--epochs`) and keeps its best epoch, so each has converged. The setting
is chosen by its mean validation accuracy over the seeds; the test set is
scored once per seed for the teacher, the scratch student and the chosen
setting. Writes `benchmarks/ARTICLE_MLP_<dataset>.md`.

Run: `.venv/bin/python benchmarks/article_mlp.py --dataset fashion_mnist`
(about 40 minutes on 2 cores).
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
import tensorflow as tf  # noqa: E402

from kd_keras import datasets  # noqa: E402
from kd_keras.app import evaluation, protocol  # noqa: E402


def parse_settings(text):
    """`"4:0.1,2:0.5"` -> `[(4.0, 0.1), (2.0, 0.5)]`."""
    pairs = [item.split(":") for item in text.split(",")]
    return [(float(t), float(a)) for t, a in pairs]


def mean_std(values):
    values = list(values)
    return statistics.mean(values), statistics.stdev(values)


def run(args):
    arrays = datasets.load(args.dataset)
    test = arrays[1]
    budget = {
        "epochs": args.epochs,
        "patience": args.patience,
        "batch_size": args.batch_size,
    }
    validation_scores = {setting: [] for setting in args.settings}
    students = {}
    tests = {"teacher": [], "scratch": []}
    for seed in range(args.seeds):
        data = protocol.split(arrays, None, seed)
        train, validation, _ = data
        teacher = protocol.train_teacher(
            (train, validation),
            "mlp",
            epochs=args.teacher_epochs,
            batch_size=args.batch_size,
            seed=seed,
        )
        tests["teacher"].append(evaluation.accuracy(teacher, *test))
        initial = protocol.new_student((train, None), "mlp", seed)
        scratch, _ = protocol.train_student(
            "student_scratch", initial, teacher, data, budget, seed
        )
        tests["scratch"].append(evaluation.accuracy(scratch, *test))
        for temperature, alpha in args.settings:
            student, _ = protocol.train_student(
                "student_distilled",
                initial,
                teacher,
                data,
                {**budget, "temperature": temperature, "alpha": alpha},
                seed,
            )
            validation_scores[temperature, alpha].append(
                evaluation.accuracy(student, *validation)
            )
            students[seed, temperature, alpha] = student
        print(f"seed {seed}: validation {validation_scores}", flush=True)
    chosen = max(
        args.settings, key=lambda s: statistics.mean(validation_scores[s])
    )
    tests["distilled"] = [
        evaluation.accuracy(students[(seed, *chosen)], *test)
        for seed in range(args.seeds)
    ]
    return validation_scores, chosen, tests


def write(results, args, seconds):
    validation_scores, chosen, tests = results
    gains = [
        d - s for d, s in zip(tests["distilled"], tests["scratch"], strict=True)
    ]
    gain, gain_std = mean_std(100 * g for g in gains)
    lines = [
        f"# The article's MLP case study on {args.dataset}",
        "",
        f"Teacher MLP 3x256 ({args.teacher_epochs} epochs); student MLP "
        "1x128, trained from scratch and distilled with Hinton KD from the "
        "same initial weights, every label used. Each student stops when "
        f"its validation accuracy has not improved for {args.patience} "
        f"epochs (at most {args.epochs}; Adam, batch {args.batch_size}) and "
        "keeps its best epoch. The validation split is carved from the "
        "training data; the setting is chosen on it; the test set is scored "
        f"once per seed. {args.seeds} seeds.",
        "",
        "Validation accuracy of every setting tried (mean ± std):",
        "",
        "| T | alpha | validation accuracy |",
        "|---:|---:|---:|",
    ]
    for (temperature, alpha), values in validation_scores.items():
        mark = " (chosen)" if (temperature, alpha) == chosen else ""
        mean, std = mean_std(values)
        lines.append(
            f"| {temperature:g} | {alpha:g} | {mean:.4f} ± {std:.4f}{mark} |"
        )
    lines += [
        "",
        "Test accuracy:",
        "",
        "| model | "
        + " | ".join(f"seed {i}" for i in range(args.seeds))
        + " | mean ± std |",
        "|---|" + "---:|" * (args.seeds + 1),
    ]
    names = {
        "teacher": "teacher",
        "scratch": "scratch student",
        "distilled": f"distilled, T={chosen[0]:g}, alpha={chosen[1]:g}",
    }
    for key, name in names.items():
        mean, std = mean_std(tests[key])
        lines.append(
            f"| {name} | "
            + " | ".join(f"{v:.4f}" for v in tests[key])
            + f" | {mean:.4f} ± {std:.4f} |"
        )
    lines += [
        "",
        f"Distilled − scratch: {gain:+.2f} ± {gain_std:.2f} points (paired, "
        "mean ± std over the seeds).",
        "",
        f"Ran in {seconds / 60:.1f} min on {platform.machine()}, "
        f"{os.cpu_count()} CPU cores, TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}, {time.strftime('%Y-%m-%d')}, with "
        f"`python benchmarks/article_mlp.py {' '.join(sys.argv[1:])}`.",
    ]
    path = Path(__file__).with_name(f"ARTICLE_MLP_{args.dataset}.md")
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="digits", choices=datasets.NAMES)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--teacher-epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--settings",
        type=parse_settings,
        default="1:0.5,2:0.5,4:0.5,4:0.1",
        help="temperature:alpha pairs, comma-separated",
    )
    args = parser.parse_args()
    start = time.perf_counter()
    results = run(args)
    write(results, args, time.perf_counter() - start)


if __name__ == "__main__":
    main()
