"""Does distillation pay off? The demo's scenario over seeds, tuned honestly.

The scenario of `kd-keras demo`: a teacher trained on every training sample
and its label, then three twins of the student, from the same initial
weights, given only `--labels` of the labels: scratch (the labelled samples
alone), pseudo-labels (the teacher's top class on every input) and
distilled (the teacher's soft targets on every input, the labels where
known). See `kd_keras.app.demo`.

Honest selection: the validation split is carved from the training data
(`kd_keras.protocol.split`); the distilled twin's T and alpha are chosen from a
grid by the mean validation accuracy over the seeds of `--grid-seeds`; the
test set is scored once per seed, for the chosen setting and the two
baselines. Each seed draws its own labelled samples and initial weights.

Writes `benchmarks/PAYOFF_<dataset>.md`: test accuracy (mean ± std over the
seeds), the distilled twin's gain over its scratch twin (mean ± std of the
paired differences) and the share of the teacher-scratch gap it closed, and
the validation grid.

Run: `.venv/bin/python benchmarks/payoff.py` (digits, about 30 minutes on 2
cores); `--dataset fashion_mnist --grid-seeds 1 --temperatures 2,4` (about
1.5 hours).
"""

import argparse
import itertools
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
from kd_keras.app import demo, evaluation, protocol  # noqa: E402


def floats(text):
    return [float(value) for value in text.split(",")]


def mean_std(values):
    values = list(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.mean(values), spread


def fmt(values, scale=1.0, digits=4):
    mean, std = mean_std(v * scale for v in values)
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def run(dataset, seeds, grid_seeds, labels, architecture, grid):
    arrays = datasets.load(dataset)
    architecture = architecture or protocol.default_architecture(arrays[0][0])
    labels = labels or demo.default_labels(arrays[0][1])
    settings = {
        **protocol.settings_for(architecture),
        "architecture": architecture,
    }
    test = arrays[1]
    splits = {seed: protocol.split(arrays, labels, seed) for seed in seeds}
    train, validation, _ = splits[seeds[0]]
    print(f"teacher ({architecture}) on {len(train[1]):,} samples ...")
    teacher = protocol.train_teacher(
        (train, validation),
        architecture,
        settings["teacher_epochs"],
        settings["batch_size"],
        seed=0,
    )
    validation_accuracy = {}
    for seed in grid_seeds:
        initial = protocol.new_student((train, None), architecture, seed)
        for temperature, alpha in grid:
            student, _ = protocol.train_student(
                "student_distilled",
                initial,
                teacher,
                splits[seed],
                {**settings, "temperature": temperature, "alpha": alpha},
                seed,
            )
            score = evaluation.accuracy(student, *validation)
            validation_accuracy.setdefault((temperature, alpha), []).append(
                score
            )
            print(f"seed {seed} T={temperature} alpha={alpha}: val {score}")
    chosen = max(grid, key=lambda k: statistics.mean(validation_accuracy[k]))
    defaults = {
        "temperature": settings["temperature"],
        "alpha": settings["alpha"],
    }
    settings["temperature"], settings["alpha"] = chosen
    print(f"chosen on validation: T={chosen[0]}, alpha={chosen[1]}")
    results = {"teacher": {}}
    for seed in seeds:
        students, histories = demo.train_students(
            teacher, splits[seed], settings, seed
        )
        if chosen != (defaults["temperature"], defaults["alpha"]):
            # What `kd-keras demo` itself trains, set before any run.
            students["student_defaults"], histories["student_defaults"] = (
                protocol.train_student(
                    "student_distilled",
                    protocol.new_student(splits[seed], architecture, seed),
                    teacher,
                    splits[seed],
                    {**settings, **defaults},
                    seed,
                )
            )
        results["teacher"][seed] = (
            evaluation.accuracy(teacher, *validation),
            evaluation.accuracy(teacher, *test),
            0,
        )
        for role, student in students.items():
            results.setdefault(role, {})[seed] = (
                evaluation.accuracy(student, *validation),
                evaluation.accuracy(student, *test),
                len(histories[role]["loss"]),
            )
        print(f"seed {seed}: { ({r: v[seed] for r, v in results.items()}) }")
    return {
        "dataset": dataset,
        "architecture": architecture,
        "labels": len(splits[seeds[0]][2]),
        "samples": len(train[1]),
        "validation": len(validation[1]),
        "test": len(test[1]),
        "settings": settings,
        "defaults": defaults,
        "grid": validation_accuracy,
        "temperatures": sorted({t for t, _ in grid}),
        "alphas": sorted({a for _, a in grid}),
        "results": results,
        "seeds": seeds,
    }


def markdown(run_result, seconds, command):
    results, seeds = run_result["results"], run_result["seeds"]
    settings = run_result["settings"]

    def test(role):
        return [results[role][seed][1] for seed in seeds]

    gains = [
        d - s
        for d, s in zip(
            test("student_distilled"), test("student_scratch"), strict=True
        )
    ]
    gap = [
        (d - s) / (t - s)
        for t, s, d in zip(
            test("teacher"),
            test("student_scratch"),
            test("student_distilled"),
            strict=True,
        )
    ]
    gain, gain_std = mean_std(100 * g for g in gains)
    names = {
        "teacher": "teacher (all labels)",
        "student_scratch": "scratch twin (labelled samples only)",
        "student_pseudo": "pseudo-label twin (teacher's top class)",
        "student_distilled": (
            f"distilled twin (T={settings['temperature']:g}, "
            f"alpha={settings['alpha']:g}, chosen on validation)"
        ),
        "student_defaults": (
            f"distilled twin at the demo's defaults "
            f"(T={run_result['defaults']['temperature']:g}, "
            f"alpha={run_result['defaults']['alpha']:g})"
        ),
    }
    lines = [
        f"# Does distillation pay off? {run_result['dataset']}, "
        f"{run_result['labels']:,} labels",
        "",
        f"The scenario of `kd-keras demo` ({run_result['architecture']} "
        f"teacher and student): the teacher trained on all "
        f"{run_result['samples']:,} training samples and their labels; "
        f"its student twins given {run_result['labels']:,} of the labels "
        f"and every input. Validation: {run_result['validation']:,} "
        "samples carved from the training data, for early stopping and the "
        f"choice of T and alpha; test: {run_result['test']:,} samples, "
        f"scored once per seed. Seeds {', '.join(map(str, seeds))}: each "
        "draws its labelled samples and the students' initial weights.",
        "",
        f"**Distilled − scratch: {gain:+.1f} ± {gain_std:.1f} points** "
        f"(mean ± std of the paired differences over {len(seeds)} seeds, "
        f"{gain / gain_std if gain_std else float('inf'):.1f} standard "
        f"deviations); gap to the teacher closed: "
        f"{fmt(gap, 100, 0)}%.",
        "",
    ]
    if "student_defaults" in results:
        at_defaults = [
            100 * (d - s)
            for d, s in zip(
                test("student_defaults"), test("student_scratch"), strict=True
            )
        ]
        lines += [
            f"At the demo's defaults: {fmt(at_defaults, 1, 1)} points.",
            "",
        ]
    lines += [
        "| model | validation accuracy | test accuracy | epochs trained |",
        "|---|---:|---:|---:|",
    ]
    for role, name in names.items():
        if role not in results:
            continue
        values = [results[role][seed] for seed in seeds]
        lines.append(
            f"| {name} | {fmt(v[0] for v in values)} "
            f"| {fmt(v[1] for v in values)} "
            f"| {statistics.mean(v[2] for v in values):.0f} |"
        )
    lines += [
        "",
        "Per seed, test accuracy:",
        "",
        "| model | " + " | ".join(f"seed {s}" for s in seeds) + " |",
        "|---|" + "---:|" * len(seeds),
    ]
    for role, name in names.items():
        if role in results:
            lines.append(
                f"| {name} | "
                + " | ".join(f"{results[role][s][1]:.4f}" for s in seeds)
                + " |"
            )
    lines += [
        "",
        "Validation accuracy of the distilled twin over the grid (mean of "
        "the grid seeds); the best was chosen:",
        "",
        "| T | "
        + " | ".join(f"alpha={a:g}" for a in run_result["alphas"])
        + " |",
        "|---:|" + "---:|" * len(run_result["alphas"]),
    ]
    for temperature in run_result["temperatures"]:
        lines.append(
            f"| {temperature:g} | "
            + " | ".join(
                f"{statistics.mean(run_result['grid'][temperature, a]):.4f}"
                for a in run_result["alphas"]
            )
            + " |"
        )
    lines += [
        "",
        f"Ran in {seconds / 60:.1f} min on {platform.machine()}, "
        f"{os.cpu_count()} CPU cores, TensorFlow {tf.__version__}, Keras "
        f"{keras.__version__}, {time.strftime('%Y-%m-%d')}, with "
        f"`python benchmarks/payoff.py {command}`.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--labels", type=int, help="default: the demo's")
    parser.add_argument("--architecture", choices=("mlp", "cnn"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--grid-seeds",
        type=int,
        default=None,
        help="seeds the T x alpha grid is run on (default: all)",
    )
    parser.add_argument(
        "--temperatures", type=floats, default=[1.0, 2.0, 4.0, 8.0]
    )
    parser.add_argument("--alphas", type=floats, default=[0.1, 0.5])
    args = parser.parse_args(argv)
    seeds = list(range(args.seeds))
    grid_seeds = seeds[: args.grid_seeds or args.seeds]
    start = time.perf_counter()
    grid = list(itertools.product(args.temperatures, args.alphas))
    result = run(
        args.dataset, seeds, grid_seeds, args.labels, args.architecture, grid
    )
    command = " ".join(sys.argv[1:] if argv is None else argv)
    path = Path(__file__).parent / f"PAYOFF_{Path(args.dataset).stem}.md"
    path.write_text(markdown(result, time.perf_counter() - start, command))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
