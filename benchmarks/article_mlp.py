"""The article's case study: does distillation beat training from scratch?

For each seed: trains the teacher (MLP 3x256), then the student (MLP 1x128)
from scratch and, for each (temperature, alpha) setting, by Hinton KD, all
students from the same initial weights with the same epochs, batch size and
optimizer. Every setting is reported, not only the best one. Writes
`benchmarks/ARTICLE_MLP_<dataset>.md`.

Run: `.venv/bin/python benchmarks/article_mlp.py --dataset fashion_mnist`
"""

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from kd_keras import datasets, demo, evaluation  # noqa: E402


def parse_settings(text):
    """`"4:0.1,2:0.5"` -> `[(4.0, 0.1), (2.0, 0.5)]`."""
    pairs = [item.split(":") for item in text.split(",")]
    return [(float(t), float(a)) for t, a in pairs]


def run(args):
    data = datasets.load(args.dataset)
    x_test, y_test = data[1]
    results = {"teacher": [], "scratch": []}
    results.update({setting: [] for setting in args.settings})
    for seed in range(args.seeds):
        teacher = demo.train_teacher(
            data,
            "mlp",
            epochs=args.teacher_epochs,
            batch_size=args.batch_size,
            seed=seed,
        )
        results["teacher"].append(evaluation.accuracy(teacher, x_test, y_test))
        initial = demo.new_student(data, "mlp", seed)
        fit = dict(epochs=args.epochs, batch_size=args.batch_size, seed=seed)
        scratch = demo.copy_model(initial, "scratch")
        demo.train_scratch(scratch, data, **fit)
        results["scratch"].append(evaluation.accuracy(scratch, x_test, y_test))
        for temperature, alpha in args.settings:
            distilled = demo.copy_model(initial, "distilled")
            demo.distill(
                teacher,
                distilled,
                data,
                alpha=alpha,
                temperature=temperature,
                **fit,
            )
            results[(temperature, alpha)].append(
                evaluation.accuracy(distilled, x_test, y_test)
            )
        print(
            f"seed {seed}: "
            + ", ".join(
                f"{key}: {values[-1]:.4f}" for key, values in results.items()
            ),
            flush=True,
        )
    return results


def write(results, args, seconds):
    scratch = np.array(results["scratch"])
    lines = [
        f"# The article's MLP case study on {args.dataset}",
        "",
        f"Teacher MLP 3x256 ({args.teacher_epochs} epochs); student MLP "
        f"1x128 ({args.epochs} epochs, Adam, batch {args.batch_size}), "
        "trained from scratch and distilled with Hinton KD from the same "
        f"initial weights; {args.seeds} seeds; test-set accuracy. Every "
        "setting tried is listed.",
        "",
        "| model | "
        + " | ".join(f"seed {i}" for i in range(args.seeds))
        + " | mean ± std | distilled − scratch (mean) |",
        "|---|" + "---:|" * (args.seeds + 2),
    ]
    for key, values in results.items():
        values = np.array(values)
        if isinstance(key, tuple):
            label = f"distilled, T={key[0]:g}, alpha={key[1]:g}"
            gain = f"{np.mean(values - scratch):+.4f}"
        else:
            label, gain = key, ""
        lines.append(
            f"| {label} | "
            + " | ".join(f"{v:.4f}" for v in values)
            + f" | {values.mean():.4f} ± {values.std():.4f} | {gain} |"
        )
    lines += [
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
    parser.add_argument("--epochs", type=int, default=20)
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
