"""Resident memory of a long `Distiller.fit`: does it grow epoch after epoch?

On scikit-learn's digits (1,437 training samples, 64 features), an MLP
teacher (2x256, dropout) and student (1x32, dropout) distil for 50 epochs
with validation after each, in three modes, each in a fresh process:

- `cached`: the default, teacher outputs cached (`cache="auto"`);
- `online`: `cache=False`, the teacher run at every step;
- `callbacks`: `cached` with a `TemperatureSchedule`, an `AlphaSchedule`,
  a `StudentCheckpoint` and a `BackupAndRestore` writing every epoch.

After each epoch (and a `gc.collect()`) a callback reads the process's
resident memory (`VmRSS` in `/proc/self/status`). The first epochs trace
and warm up; from epoch 5 on the memory should stay flat. The table gives
the least-squares slope of RSS over epochs 5-50 in MiB per epoch and the
largest rise above epoch 5. Writes `benchmarks/MEMORY.md`.

Run: `.venv/bin/python benchmarks/memory.py` (a few minutes on 2 cores).
"""

import argparse
import gc
import json
import os
import platform
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from process import resident_mib, run_fresh  # noqa: E402

import kd_keras  # noqa: E402
from kd_keras import datasets, models  # noqa: E402

MODES = ("cached", "online", "callbacks")
EPOCHS, FROM_EPOCH, BATCH_SIZE = 50, 5, 32
# Slope (MiB/epoch) under which the memory counts as flat: 0.05 MiB/epoch
# is 2 MiB over 45 epochs, below the allocator's noise.
FLAT_SLOPE = 0.05


class RecordMemory(keras.callbacks.Callback):
    """Appends the RSS after each epoch to `self.rss`."""

    def __init__(self):
        super().__init__()
        self.rss = []

    def on_epoch_end(self, epoch, logs=None):
        gc.collect()
        self.rss.append(resident_mib())


def measure(mode, epochs):
    """RSS after each epoch of one run, in MiB."""
    keras.utils.set_random_seed(0)
    (x, y), (x_test, y_test) = datasets.load("digits")
    teacher = models.mlp((64,), 10, (256, 256), dropout=0.2, name="teacher")
    student = models.mlp((64,), 10, (32,), dropout=0.1, name="student")
    distiller = kd_keras.Distiller(
        teacher, student, cache=False if mode == "online" else "auto"
    )
    distiller.compile("adam", metrics=["accuracy"])
    record = RecordMemory()
    callbacks = [record]
    with tempfile.TemporaryDirectory() as folder:
        if mode == "callbacks":
            callbacks = [
                kd_keras.callbacks.TemperatureSchedule(
                    kd_keras.callbacks.cosine(8.0, 2.0, epochs)
                ),
                kd_keras.callbacks.AlphaSchedule(
                    kd_keras.callbacks.linear(0.5, 0.1, epochs)
                ),
                kd_keras.callbacks.StudentCheckpoint(
                    f"{folder}/student.h5", save_best_only=False
                ),
                keras.callbacks.BackupAndRestore(f"{folder}/backup"),
                record,
            ]
        distiller.fit(
            x,
            y,
            epochs=epochs,
            batch_size=BATCH_SIZE,
            validation_data=(x_test, y_test),
            callbacks=callbacks,
            verbose=0,
        )
    return record.rss


def growth(rss):
    """`(slope in MiB/epoch, largest rise in MiB)` from `FROM_EPOCH` on."""
    tail = np.asarray(rss[FROM_EPOCH - 1 :])
    epochs = np.arange(FROM_EPOCH, FROM_EPOCH + len(tail))
    slope = float(np.polyfit(epochs, tail, 1)[0])
    return slope, float(tail.max() - tail[0])


def report(results, epochs):
    lines = [
        "# Memory over a long fit",
        "",
        f"`benchmarks/memory.py`: {epochs}-epoch `Distiller.fit` on digits "
        "(1,437 samples, MLP 2x256 teacher, 1x32 student, batch "
        f"{BATCH_SIZE}, validation every epoch), resident memory (VmRSS) "
        "after each epoch, each mode in a fresh process. Slope: "
        f"least-squares fit over epochs {FROM_EPOCH}-{epochs}; rise: "
        f"largest RSS above epoch {FROM_EPOCH}'s. Flat means a slope below "
        f"{FLAT_SLOPE} MiB/epoch.",
        "",
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs.",
        "",
        "| mode | RSS epoch 1 | RSS epoch 5 | RSS last | slope | rise | flat |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for mode, rss in results.items():
        slope, rise = growth(rss)
        lines.append(
            f"| {mode} | {rss[0]:.1f} MiB | {rss[FROM_EPOCH - 1]:.1f} MiB "
            f"| {rss[-1]:.1f} MiB | {slope:+.3f} MiB/epoch "
            f"| {rise:.1f} MiB | {'yes' if abs(slope) < FLAT_SLOPE else 'NO'} |"
        )
    lines += ["", "RSS after each epoch (MiB):", ""]
    for mode, rss in results.items():
        lines.append(f"- {mode}: " + " ".join(f"{v:.0f}" for v in rss))
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--output", default=Path(__file__).parent / "MEMORY.md")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.epochs)))
        return
    results = {}
    for mode in args.modes.split(","):
        results[mode] = run_fresh(
            __file__, "--measure", mode, "--epochs", args.epochs
        )
        slope, rise = growth(results[mode])
        print(f"{mode}: {slope:+.3f} MiB/epoch, rise {rise:.1f} MiB")
    Path(args.output).write_text(report(results, args.epochs))


if __name__ == "__main__":
    main()
