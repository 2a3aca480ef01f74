"""The fixed costs of a short fit: where a 4-epoch cached fit spends its time.

On the MLP pair of `speed.py` (teacher 2x1200, student 1x128) and
Fashion-MNIST's 60,000 training images, batch size 128, each round times
(in this order; odd rounds time `whole` last):

- `whole`: a whole 4-epoch `Distiller.fit` with the in-memory cache (the
  default): the data checks, the caching pass, tracing and 4 epochs;
- `student`: a whole 4-epoch `fit` of the student alone, its tracing
  included, in the same phases;
- `teacher_pass`: one teacher pass as the cache runs it (a compiled forward
  pass in the caching batch), warm.

The ratio is `whole ÷ (student + teacher_pass)`: what distilling costs
beyond its two necessary parts. It is taken twice: in wall-clock seconds,
and in the CPU seconds of the process (all its threads), which waiting for
a core that another program holds does not inflate. The phases
of `whole` (the data checks, the caching pass, the first epoch, the later
epochs, and what is left: Keras' set-up of `fit`) say where the rest
goes, and the operations in each traced training step say what the
Distiller's step adds.

Writes its section of `benchmarks/SPEED.md`.

Run: `.venv/bin/python benchmarks/fixed_costs.py` (about 5 minutes on 2
cores).
"""

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from speed import (  # noqa: E402
    ALPHA,
    BATCH_SIZE,
    TEMPERATURE,
    crossentropy,
    load_data,
    machine,
    mlp_pair,
)
from store import write_section  # noqa: E402

import kd_keras  # noqa: E402
from kd_keras.teacher_outputs import cache  # noqa: E402

TITLE = "Fixed costs of a short fit (MLP pair)"
EPOCHS = 4
TARGET = 1.10


class Phases(keras.callbacks.Callback):
    """Times of the epochs' starts and ends, and of training's start."""

    def on_train_begin(self, logs=None):
        self.train_begin = time.perf_counter()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append([time.perf_counter()])

    def on_epoch_end(self, epoch, logs=None):
        self.epochs[-1].append(time.perf_counter())

    def split(self, whole, timings):
        """`whole`'s phases: `timings` (seconds by name), the first epoch,
        the later epochs, and the rest."""
        first = self.epochs[0][1] - self.epochs[0][0]
        later = sum(end - begin for begin, end in self.epochs[1:])
        rest = whole - sum(timings.values()) - first - later
        return {
            "whole": whole,
            **timings,
            "first epoch": first,
            "later epochs": later,
            "rest": rest,
        }


class TimedDistiller(kd_keras.Distiller):
    """A Distiller recording how long its checks and caching pass take."""

    def check_data(self, names, data):
        start = time.perf_counter()
        super().check_data(names, data)
        self.timings["checks"] += time.perf_counter() - start

    def prepare_fit_data(self, *args):
        start = time.perf_counter()
        result = super().prepare_fit_data(*args)
        self.timings["caching"] += time.perf_counter() - start
        return result


def timed_fit(model, x, y, timings):
    """Fits `model` for `EPOCHS` epochs; returns the phases of its time and
    its CPU seconds (`"cpu"`).

    `timings` holds the seconds `model` records itself while it fits."""
    phases = Phases()
    start, cpu_start = time.perf_counter(), time.process_time()
    model.fit(
        x,
        y,
        batch_size=BATCH_SIZE,
        epochs=EPOCHS,
        callbacks=[phases],
        verbose=0,
    )
    cpu = time.process_time() - cpu_start
    return {**phases.split(time.perf_counter() - start, timings), "cpu": cpu}


def compiled_distiller(x):
    """The MLP pair's Distiller (timing its checks and caching pass),
    compiled, from seed 0."""
    keras.utils.set_random_seed(0)
    teacher, student = mlp_pair(x.shape[1:], 10)
    distiller = TimedDistiller(
        teacher, student, alpha=ALPHA, temperature=TEMPERATURE
    )
    distiller.timings = {"checks": 0.0, "caching": 0.0}
    distiller.compile("adam")
    return distiller


def compiled_student(x):
    """The MLP pair's student alone, compiled, from seed 0 (the
    Distiller's initial student)."""
    keras.utils.set_random_seed(0)
    _, student = mlp_pair(x.shape[1:], 10)
    student.compile("adam", crossentropy())
    return student


def whole_fit(x, y):
    distiller = compiled_distiller(x)
    return timed_fit(distiller, x, y, distiller.timings)


def student_fit(x, y):
    return timed_fit(compiled_student(x), x, y, {})


def teacher_pass(x):
    """`(seconds, CPU seconds)` of one warm teacher pass over `x`."""
    keras.utils.set_random_seed(0)
    teacher, _ = mlp_pair(x.shape[1:], 10)
    batch = cache.caching_batch_size(teacher, BATCH_SIZE)
    forward = tf.function(lambda b: teacher(b, training=False))
    forward(x[:batch])
    start, cpu_start = time.perf_counter(), time.process_time()
    for first in range(0, len(x), batch):
        forward(x[first : first + batch]).numpy()
    return time.perf_counter() - start, time.process_time() - cpu_start


# Graph bookkeeping, not work: left out of the operation counts.
_BOOKKEEPING = {"Const", "Identity", "NoOp", "Placeholder"}


def step_operations(model, x, y):
    """The operations of `model`'s traced training step, bookkeeping aside,
    after a one-epoch fit on `x`, `y` (any `tf.cond` branch counted once)."""
    graphs = []
    step = model.train_step

    def recording(data):
        graphs.append(tf.compat.v1.get_default_graph())
        return step(data)

    model.train_step = recording
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=1, verbose=0)
    graph = graphs[-1].as_graph_def()
    nodes = [*graph.node] + [
        node
        for function in graph.library.function
        for node in function.node_def
    ]
    return sum(node.op not in _BOOKKEEPING for node in nodes)


def operations(x, y):
    """`(distilling, student alone)`: operations per training step."""
    return (
        step_operations(compiled_distiller(x), x, y),
        step_operations(compiled_student(x), x, y),
    )


def measure(rounds):
    x, y, source = load_data(60_000)
    results = []
    for round_ in range(rounds):
        print(f"round {round_ + 1}/{rounds}", flush=True)
        # Odd rounds run the parts first: the order is not what differs.
        if round_ % 2:
            student, passed = student_fit(x, y), teacher_pass(x)
            result = whole_fit(x, y)
        else:
            result = whole_fit(x, y)
            student, passed = student_fit(x, y), teacher_pass(x)
        result.update({f"student {k}": v for k, v in student.items()})
        result["teacher_pass"], result["teacher_pass cpu"] = passed
        result["parts"] = student["whole"] + result["teacher_pass"]
        result["ratio"] = result["whole"] / result["parts"]
        parts_cpu = student["cpu"] + result["teacher_pass cpu"]
        result["cpu ratio"] = result["cpu"] / parts_cpu
        print(result, flush=True)
        results.append(result)
    counted = operations(x[:512], y[:512])
    print("operations per step (distilling, student alone):", counted)
    return source, len(x), results, counted


def median_interval(values, resamples=10_000):
    """The 95% bootstrap interval of the median of `values`."""
    rng = np.random.default_rng(0)
    draws = rng.choice(values, size=(resamples, len(values)))
    return tuple(np.percentile(np.median(draws, axis=1), [2.5, 97.5]))


def verdict(interval):
    """Whether the target is met, judged on the median's interval: on a
    shared machine one run's median moves by more than the target's
    margin."""
    low, high = interval
    if high <= TARGET:
        return "met"
    if low > TARGET:
        return "NOT met"
    return "not settled (the interval holds it)"


def ratio_row(name, ratios):
    """A table row: the median of `ratios`, its interval, range and
    verdict."""
    low, high = median_interval(ratios)
    return (
        f"| {name} | {statistics.median(ratios):.2f} | {low:.2f}–{high:.2f} "
        f"| {min(ratios):.2f}–{max(ratios):.2f} | ≤ {TARGET:.2f}: "
        f"{verdict((low, high))} |"
    )


def section(source, samples, results, operations):
    median = {
        key: statistics.median(r[key] for r in results) for key in results[0]
    }
    lines = [
        f"## {TITLE}: {samples} samples of {source}",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} by "
        f"`benchmarks/fixed_costs.py`, {len(results)} rounds, on "
        f"{machine()}. A whole {EPOCHS}-epoch `Distiller.fit` with the "
        "in-memory cache ÷ (a whole "
        f"{EPOCHS}-epoch fit of the student alone + one teacher pass in "
        "the caching batch):",
        "",
        "| ratio | median | its 95% interval | min–max | target (median) |",
        "|---|---|---|---|---|",
        ratio_row("whole fit ÷ its parts", [r["ratio"] for r in results]),
        ratio_row("the same in CPU seconds", [r["cpu ratio"] for r in results]),
        "",
        "The interval is the bootstrap's (10,000 resamples of the rounds). "
        "CPU seconds are those of the process's threads together: time "
        "spent waiting for a core that another program holds does not "
        "count in them.",
        "",
        "Where the time goes (medians, seconds; the first epoch includes "
        "tracing the step, the rest is Keras' set-up of `fit`):",
        "",
        "| phase | distilling | student alone |",
        "|---|---|---|",
    ]
    for key in ("checks", "caching", "first epoch", "later epochs", "rest"):
        student = median.get(f"student {key}")
        lines.append(
            f"| {key} | {median[key]:.2f} | "
            f"{'—' if student is None else f'{student:.2f}'} |"
        )
    lines += [
        f"| teacher pass | — (in caching) | {median['teacher_pass']:.2f} |",
        f"| whole | {median['whole']:.2f} | {median['parts']:.2f} |",
    ]
    distilling, alone = operations
    later_steps = (EPOCHS - 1) * math.ceil(samples / BATCH_SIZE)
    per_step = (
        median["later epochs"] - median["student later epochs"]
    ) / later_steps
    lines += [
        "",
        "Operations per training step (graph bookkeeping aside): "
        f"{distilling} distilling, {alone} for the student alone. The "
        "Distiller's step adds the distillation term and its gradient, the "
        "label mask, the check that skips a non-finite update and three "
        "trackers (`student_loss`, `distillation_loss`, "
        "`teacher_agreement`). The later epochs differ by "
        f"{1000 * per_step:.2f} ms per step: "
        f"{1e6 * per_step / (distilling - alone):.1f} µs per added "
        "operation.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "SPEED.md"
    )
    args = parser.parse_args(argv)
    text = section(*measure(args.rounds))
    write_section(args.output, text, TITLE)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    sys.exit(main())
