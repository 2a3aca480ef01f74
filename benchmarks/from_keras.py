"""kd_keras in keras.distillation's words against keras.distillation itself.

The same call (`Distiller(teacher, student, LogitsDistillation(T),
student_loss_weight=alpha)`, `compile("adam", loss=...)`) from
`keras.distillation` with its default loss, with
`loss=keras.losses.KLDivergence()` (Hinton's loss, the one kd_keras
computes by default), and from `kd_keras.distillation`, cached (its default
on numpy inputs) and online (`cache=False`). On the CNN pair of
`benchmarks/speed.py` (Fashion-MNIST, 12,000 images), in rounds that
alternate the modes, it times steady-state epochs (each fit's first left
out) and whole 4-epoch fits (tracing and caching included), and writes
`benchmarks/FROM_KERAS.md`.

Run: `.venv/bin/python benchmarks/from_keras.py` (about 10 minutes on 2
cores).
"""

import argparse
import statistics
import time
from pathlib import Path

import speed

MODES = (
    "keras_distillation",
    "keras_distillation_kl",
    "keras_words",
    "keras_words_online",
)
TITLES = {
    "keras_distillation": "`keras.distillation`, default loss",
    "keras_distillation_kl": "`keras.distillation`, `KLDivergence()`",
    "keras_words": "`kd_keras.distillation` (cached)",
    "keras_words_online": "`kd_keras.distillation`, `cache=False`",
}
FIT_EPOCHS = 4


def measure(case, samples, rounds):
    x, y, source = speed.load_data(samples)
    epochs = {mode: [] for mode in MODES}
    fits = {mode: [] for mode in MODES}
    for round_ in range(rounds):
        print(f"round {round_ + 1}/{rounds}", flush=True)
        for mode in MODES:
            epochs[mode] += speed.epoch_seconds(mode, case, x, y)
            fits[mode].append(speed.run_seconds(mode, case, x, y, FIT_EPOCHS))
    return source, len(x), epochs, fits


def report(case, rounds, source, samples, epochs, fits):
    reference = statistics.median(epochs["keras_distillation_kl"])
    lines = [
        "# kd_keras against keras.distillation, in Keras' words",
        "",
        f"Written by `benchmarks/from_keras.py` on "
        f"{time.strftime('%Y-%m-%d')}: {speed.TITLES[case]}, {samples} "
        f"samples of {source}, batch size {speed.BATCH_SIZE}, "
        f"T={speed.TEMPERATURE}, student_loss_weight={speed.ALPHA}, "
        f"{rounds} rounds with the modes alternating, on {speed.machine()}.",
        "",
        "| mode | epoch s (median) | min–max | ÷ Keras with KLDivergence() "
        f"| {FIT_EPOCHS}-epoch fit s (median) | min–max |",
        "|---|---|---|---|---|---|",
    ]
    for mode in MODES:
        epoch, fit = epochs[mode], fits[mode]
        lines.append(
            f"| {TITLES[mode]} | {statistics.median(epoch):.2f} | "
            f"{min(epoch):.2f}–{max(epoch):.2f} | "
            f"{statistics.median(epoch) / reference:.2f} | "
            f"{statistics.median(fit):.1f} | {min(fit):.1f}–{max(fit):.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="cnn", choices=list(speed.CASES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=None)
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "FROM_KERAS.md"
    )
    args = parser.parse_args(argv)
    samples = args.samples or speed.DEFAULT_SAMPLES[args.case]
    results = measure(args.case, samples, args.rounds)
    args.output.write_text(report(args.case, args.rounds, *results))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
