"""Speed of kd_keras against the physical bound and keras.distillation.

Three cases on Fashion-MNIST: an MLP pair (teacher 2x1200, student 1x128),
the CNN pair of `kd_keras.models` (`cnn_teacher` / `cnn_student`), and the
same student under a wide CNN teacher (64-128-256 filters, 512 units) whose
forward pass outweighs the student's training step, as distillation's
teachers usually do (random inputs of the same shape when Fashion-MNIST is
not installed: speed does not depend on the values). In rounds, alternating
the modes so that a noisy, shared machine slows them alike, it times:

- `student`: the student trained alone (`student.fit`);
- `teacher_forward`: one teacher forward pass over the epoch's batches;
- `online`: kd_keras with `cache=False` (teacher run at every step);
- `cached`: kd_keras' default on numpy inputs (teacher outputs cached);
- `keras_distillation`: `keras.distillation.Distiller` with
  `LogitsDistillation` (its default loss, which is not Hinton's: see
  `docs/from_keras_distillation.md`); `keras_distillation_kl` with
  `LogitsDistillation(loss=keras.losses.KLDivergence())`, Hinton's loss;
- `keras_io`: the keras.io example's `train_step` Distiller, written here;
- `online_xla`, `cached_xla`: kd_keras with `jit_compile=True`.

Epoch times exclude each fit's first epoch (tracing). Whole runs (4 epochs
against keras.distillation, 10 epochs cached against online) are timed end
to end, caching pass included. Memory is, in a fresh process per mode that
has loaded the data, the peak resident memory during two epochs above what
the process held before the models were built. Writes `benchmarks/SPEED.md`.

Run: `.venv/bin/python benchmarks/speed.py` (about 70 minutes on 2 cores).
"""

import argparse
import json
import os
import platform
import statistics
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from process import resident_mib, run_fresh  # noqa: E402

import kd_keras  # noqa: E402
from kd_keras import datasets, distillation, models  # noqa: E402

TEMPERATURE, ALPHA, BATCH_SIZE = 4.0, 0.1, 128
EPOCH_MODES = (
    "student",
    "teacher_forward",
    "online",
    "cached",
    "keras_distillation",
    "keras_distillation_kl",
    "keras_io",
    "online_xla",
    "cached_xla",
)
# `(module, loss, Distiller arguments)` of the modes in keras.distillation's
# words: Keras' with its default loss and with Hinton's, and kd_keras' with
# its default (Hinton's), cached as by default and online.
KERAS_WORDS_MODES = {
    "keras_distillation": (keras.distillation, "kl_divergence", {}),
    "keras_distillation_kl": (
        keras.distillation,
        keras.losses.KLDivergence(),
        {},
    ),
    "keras_words": (distillation, "kl_divergence", {}),
    "keras_words_online": (distillation, "kl_divergence", {"cache": False}),
}
TARGETS = {
    "fit4": ("kd_keras 4-epoch fit ÷ keras.distillation 4-epoch fit", 0.5),
    "online": ("online epoch ÷ (student epoch + teacher forward)", 1.05),
    "cached": ("cached epoch ÷ student epoch", 1.10),
    "run10": ("10-epoch run, cached ÷ online", None),
}


class KerasIODistiller(keras.Model):
    """The Distiller of the keras.io example, as users copy it."""

    def __init__(self, student, teacher):
        super().__init__()
        self.teacher = teacher
        self.student = student

    def compile(
        self,
        optimizer,
        metrics,
        student_loss_fn,
        distillation_loss_fn,
        alpha=0.1,
        temperature=3,
    ):
        super().compile(optimizer=optimizer, metrics=metrics)
        self.student_loss_fn = student_loss_fn
        self.distillation_loss_fn = distillation_loss_fn
        self.alpha = alpha
        self.temperature = temperature

    def train_step(self, data):
        x, y = data
        teacher_predictions = self.teacher(x, training=False)
        with tf.GradientTape() as tape:
            student_predictions = self.student(x, training=True)
            student_loss = self.student_loss_fn(y, student_predictions)
            distillation_loss = (
                self.distillation_loss_fn(
                    tf.nn.softmax(teacher_predictions / self.temperature, 1),
                    tf.nn.softmax(student_predictions / self.temperature, 1),
                )
                * self.temperature**2
            )
            loss = (
                self.alpha * student_loss + (1 - self.alpha) * distillation_loss
            )
        variables = self.student.trainable_variables
        gradients = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, student_predictions)
        return {m.name: m.result() for m in self.metrics}

    def call(self, x):
        return self.student(x)


def mlp_pair(input_shape, classes):
    return (
        models.mlp(input_shape, classes, (1200, 1200), name="mlp_teacher"),
        models.mlp(input_shape, classes, (128,), name="mlp_student"),
    )


def cnn_pair(input_shape, classes):
    return (
        models.cnn_teacher(input_shape, classes),
        models.cnn_student(input_shape, classes),
    )


def cnn_wide_pair(input_shape, classes):
    """A teacher with 4x the convolution work of `cnn_teacher`."""
    return (
        models.cnn(input_shape, classes, (64, 128, 256), 512, "wide_teacher"),
        models.cnn_student(input_shape, classes),
    )


CASES = {"mlp": mlp_pair, "cnn": cnn_pair, "cnn_wide": cnn_wide_pair}
DEFAULT_SAMPLES = {"mlp": 60000, "cnn": 12000, "cnn_wide": 12000}
TITLES = {
    "mlp": "MLP pair (teacher 2x1200, student 1x128)",
    "cnn": "CNN pair (`cnn_teacher` 32-64-128, `cnn_student` 8-16)",
    "cnn_wide": "Wide CNN teacher (64-128-256, 512 units), `cnn_student`",
}


def load_data(samples):
    """`(x, y, source)`: Fashion-MNIST's first `samples` training images."""
    try:
        (x, y), _ = datasets.load("fashion_mnist")
        source = "Fashion-MNIST"
    except (FileNotFoundError, OSError, ValueError):
        rng = np.random.default_rng(0)
        x = rng.random((samples, 28, 28, 1), dtype=np.float32)
        y = rng.integers(0, 10, samples)
        source = "random inputs of Fashion-MNIST's shape"
    return x[:samples], y[:samples], source


def crossentropy():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def trainer(mode, case, x):
    """`(model to fit, fit keyword arguments)` for a training mode."""
    keras.utils.set_random_seed(0)
    teacher, student = CASES[case](x.shape[1:], 10)
    if mode == "student":
        student.compile("adam", crossentropy())
        return student
    if mode in KERAS_WORDS_MODES:
        # The same call, from `keras.distillation` or `kd_keras.distillation`.
        module, loss, cache = KERAS_WORDS_MODES[mode]
        distiller = module.Distiller(
            teacher,
            student,
            module.LogitsDistillation(temperature=TEMPERATURE, loss=loss),
            student_loss_weight=ALPHA,
            **cache,
        )
        distiller.compile("adam", loss=crossentropy())
        return distiller
    if mode == "keras_io":
        distiller = KerasIODistiller(student, teacher)
        distiller.compile(
            "adam",
            [],
            crossentropy(),
            keras.losses.KLDivergence(),
            alpha=ALPHA,
            temperature=TEMPERATURE,
        )
        return distiller
    distiller = kd_keras.Distiller(
        teacher,
        student,
        alpha=ALPHA,
        temperature=TEMPERATURE,
        cache=mode.startswith("cached"),
    )
    distiller.compile("adam", jit_compile=mode.endswith("xla") or "auto")
    return distiller


def teacher_pass_seconds(case, x, epochs):
    """Times of the teacher's forward pass over `x`, first pass left out.

    A compiled function over the training batches: the teacher's compute
    itself, as a training step runs it. (`predict`, with its own overheads,
    took 1.6x as long for the wide teacher, which would flatter the online
    ratio.)
    """
    teacher, _ = CASES[case](x.shape[1:], 10)
    forward = tf.function(lambda batch: teacher(batch, training=False))
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        for first in range(0, len(x), BATCH_SIZE):
            forward(x[first : first + BATCH_SIZE]).numpy()
        times.append(time.perf_counter() - start)
    return times[1:]


def epoch_seconds(mode, case, x, y, epochs=3):
    """Steady-state epoch times of `mode` (first epoch left out)."""
    if mode == "teacher_forward":
        return teacher_pass_seconds(case, x, epochs)
    timer = EpochTimer()
    trainer(mode, case, x).fit(
        x,
        y,
        batch_size=BATCH_SIZE,
        epochs=epochs,
        callbacks=[timer],
        verbose=0,
    )
    return timer.seconds[1:]


def run_seconds(mode, case, x, y, epochs):
    """Wall time of a whole `fit` of `epochs` epochs, tracing included."""
    model = trainer(mode, case, x)
    start = time.perf_counter()
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=epochs, verbose=0)
    return time.perf_counter() - start


def peak_memory_mib(mode, case, samples):
    """Maximum resident memory of a fresh process running one epoch."""
    return run_fresh(
        __file__, "--memory-of", mode, "--cases", case, "--samples", samples
    )["peak_mib"]


class PeakMemory(threading.Thread):
    """Samples the resident memory every 10 ms until stopped."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak = resident_mib()
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(0.01):
            self.peak = max(self.peak, resident_mib())


def measure_memory(mode, case, samples):
    x, y, _ = load_data(samples)
    baseline = resident_mib()
    sampler = PeakMemory()
    sampler.start()
    epoch_seconds(mode, case, x, y, epochs=2)
    sampler.done.set()
    sampler.join()
    print(json.dumps({"peak_mib": sampler.peak - baseline}))


def summary(values):
    return statistics.median(values), min(values), max(values)


def measure_case(case, samples, rounds):
    x, y, source = load_data(samples)
    epochs = {mode: [] for mode in EPOCH_MODES}
    runs = {key: [] for key in ("cached4", "keras4", "cached10", "online10")}
    for round_ in range(rounds):
        print(f"{case}: round {round_ + 1}/{rounds}", flush=True)
        for mode in EPOCH_MODES:
            epochs[mode] += epoch_seconds(mode, case, x, y)
        runs["cached4"].append(run_seconds("cached", case, x, y, 4))
        runs["keras4"].append(run_seconds("keras_distillation", case, x, y, 4))
        runs["cached10"].append(run_seconds("cached", case, x, y, 10))
        runs["online10"].append(run_seconds("online", case, x, y, 10))
    memory = {
        mode: peak_memory_mib(mode, case, samples) for mode in EPOCH_MODES
    }
    # Interference on a shared machine only ever adds time, and some epochs
    # of every mode start late (see HEADER): the verdicts use the best of the
    # repeats (as `timeit` advises); the medians are shown beside them.
    ratios = {
        name: case_ratios(
            {mode: stat(t) for mode, t in epochs.items()},
            {key: stat(t) for key, t in runs.items()},
        )
        for name, stat in (("median", statistics.median), ("best", min))
    }
    return {
        "samples": len(x),
        "source": source,
        "epochs": {mode: summary(t) for mode, t in epochs.items()},
        "runs": {key: summary(t) for key, t in runs.items()},
        "memory": memory,
        "ratios": ratios,
    }


def case_ratios(epoch, run):
    """The target ratios from one statistic of the epoch and run times."""
    student, teacher = epoch["student"], epoch["teacher_forward"]
    return {
        "fit4": run["cached4"] / run["keras4"],
        "online": epoch["online"] / (student + teacher),
        "cached": epoch["cached"] / student,
        "run10": run["cached10"] / run["online10"],
        # One teacher pass, then four student epochs, against four epochs
        # that each pay the student and the teacher: what no cache beats.
        "fit4_bound": (4 * student + teacher) / (4 * (student + teacher)),
    }


def verdict(key, value):
    target = TARGETS[key][1]
    if target is None:
        return "—"
    met = value <= target
    shown = f"≥ {1 / target:.0f}× faster" if key == "fit4" else f"≤ {target}"
    return f"{shown}: {'met' if met else 'NOT met'}"


def machine():
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()}, Python "
        f"{platform.python_version()}, TensorFlow {tf.__version__}, Keras "
        f"{keras.__version__}, no GPU"
    )


HEADER = [
    "# Speed: kd_keras against the bound and against keras.distillation",
    "",
    f"Written by `benchmarks/speed.py`: batch size {BATCH_SIZE}, "
    f"T={TEMPERATURE}, alpha={ALPHA}. The machine is shared and noisy: the "
    "ratios, from modes timed in alternation, are the result, not the "
    "seconds; the verdicts use the best of the repeats, since interference "
    "only adds time. Each case's section says when it was measured and on "
    "what.",
    "",
    "How to read the ratios:",
    "",
    "- **A whole 4-epoch fit against `keras.distillation`.** A cache can "
    "make it 2x faster only when one teacher pass costs at least two "
    "student epochs: (T + 4S) ÷ 4(T + S) ≤ ½ means T ≥ 2S. Each section "
    "gives that bound for its pair; beyond it, both tools pay the same "
    "per-fit costs (tracing the step, about 2 s, and late epoch starts), "
    "which weigh more on a short run. The caching pass runs batches up to 4x "
    "the training batch, which can beat the bound for MLP teachers.",
    "- **Online and cached epochs.** An online epoch should cost about a "
    "student epoch plus a teacher pass (ratio 1.0), a cached epoch about a "
    "student epoch alone. Epoch times vary more than the margins tested, "
    "so a verdict can miss on one statistic and not the other.",
    "- **Late epoch starts.** Some epochs, in every mode, start about 2.5 s "
    "late. Keras replaces the dataset iterator at each epoch, and "
    "TensorFlow then waits for the old iterator's tf.data autotuning "
    "thread, which can be asleep for seconds. Training the student alone "
    "for 20 epochs on a `tf.data` input, 3 of 19 epochs started late; with "
    "`options.autotune.enabled = False`, none of 38 did. Numpy inputs go "
    "through Keras' own pipeline, so users cannot turn this off for them.",
    "- **XLA** (`jit_compile=True`, modes `*_xla`) on this CPU speeds the "
    'MLP up and slows the CNNs down. Keras\' default, `jit_compile="auto"`, '
    "leaves it off on CPU and turns it on for GPUs and TPUs; the step "
    "compiles either way (tested).",
    "",
]


def section(case, result, rounds):
    """The Markdown section of one case's results."""
    lines = [
        f"## {TITLES[case]}: {result['samples']} samples of {result['source']}",
        "",
        f"Measured {time.strftime('%Y-%m-%d')}, {rounds} rounds, on "
        f"{machine()}.",
        "",
        "| ratio | best of repeats | median | target (on the best) |",
        "|---|---|---|---|",
    ]
    best, median = result["ratios"]["best"], result["ratios"]["median"]
    for key, (title, _) in TARGETS.items():
        lines.append(
            f"| {title} | {best[key]:.2f} | {median[key]:.2f} | "
            f"{verdict(key, best[key])} |"
        )
    lines += [
        "",
        "Best 4-epoch ratio any cache can reach here, (4 student epochs "
        "+ 1 teacher pass) ÷ 4 × (student epoch + teacher pass): "
        f"{best['fit4_bound']:.2f} (medians: {median['fit4_bound']:.2f}).",
        "",
        "| mode | epoch s (median) | min–max | memory MiB |",
        "|---|---|---|---|",
    ]
    for mode, (med, low, high) in result["epochs"].items():
        lines.append(
            f"| {mode} | {med:.2f} | {low:.2f}–{high:.2f} | "
            f"{result['memory'][mode]:.0f} |"
        )
    lines += [
        "",
        "| whole run | seconds (median) | min–max |",
        "|---|---|---|",
    ]
    for key, (med, low, high) in result["runs"].items():
        lines.append(f"| {key} | {med:.1f} | {low:.1f}–{high:.1f} |")
    return "\n".join(lines) + "\n"


def write_report(path, results, rounds):
    """Writes the cases measured now into `path`, keeping its other cases
    and the sections of other benchmarks."""
    sections, others = {}, []
    if path.exists():
        for chunk in path.read_text().split("\n## ")[1:]:
            case = next(
                (c for c, t in TITLES.items() if chunk.startswith(t + ":")),
                None,
            )
            if case is None:
                others.append("## " + chunk.strip() + "\n")  # store.py's
            else:
                sections[case] = "## " + chunk.strip() + "\n"
    for case, result in results.items():
        sections[case] = section(case, result, rounds)
    body = "\n".join(
        [*(sections[case] for case in CASES if case in sections), *others]
    )
    path.write_text("\n".join(HEADER) + body)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--samples",
        type=int,
        default=None,
        help=f"training samples per case (default: {DEFAULT_SAMPLES})",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(__file__).parent / "SPEED.md",
        help="Markdown file; sections of cases not run now are kept",
    )
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cases = args.cases.split(",")
    if args.memory_of:
        return measure_memory(args.memory_of, cases[0], args.samples)
    results = {
        case: measure_case(
            case, args.samples or DEFAULT_SAMPLES[case], args.rounds
        )
        for case in cases
    }
    write_report(args.output, results, args.rounds)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
