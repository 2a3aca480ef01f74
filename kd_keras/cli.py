"""The `kd-keras` command line."""

import argparse
import os
import sys
import time
from pathlib import Path

_DEMO_EXAMPLES = """examples:
  kd-keras demo
  kd-keras demo --epochs 30 --seed 1 --output runs/my-demo
"""


def _positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _parser():
    parser = argparse.ArgumentParser(
        prog="kd-keras",
        description="Knowledge distillation for Keras.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="train a teacher, a scratch student and a distilled student",
        description=(
            "On scikit-learn's digits: trains the case-study teacher (MLP "
            "3x256), the student (MLP 1x128) from scratch, and the same "
            "student distilled from the teacher with the same budget; "
            "prints their test accuracy and saves them as .h5 files."
        ),
        epilog=_DEMO_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--epochs",
        type=_positive_int,
        default=20,
        help="epochs of each student (default: 20)",
    )
    demo.add_argument(
        "--teacher-epochs",
        type=_positive_int,
        default=30,
        help="epochs of the teacher (default: 30)",
    )
    demo.add_argument(
        "--temperature",
        type=float,
        default=4.0,
        help="distillation temperature (default: 4.0)",
    )
    demo.add_argument(
        "--alpha",
        type=float,
        default=0.1,
        help="weight of the hard-label loss (default: 0.1)",
    )
    demo.add_argument(
        "--seed", type=int, default=0, help="random seed (default: 0)"
    )
    demo.add_argument(
        "--output",
        type=Path,
        default=None,
        help="run folder, must not exist (default: runs/demo-<time>)",
    )
    return parser


def _demo(args):
    from kd_keras import datasets, demo
    from kd_keras.saving import save_model

    output = args.output or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    if output.exists():
        raise SystemExit(f"kd-keras: {output} exists; choose another --output")
    data = datasets.load("digits")
    x_test, y_test = data[1]
    print("Training the teacher (MLP 3x256) on digits ...")
    teacher = demo.train_teacher(
        data, epochs=args.teacher_epochs, seed=args.seed, verbose=2
    )
    print("Training the student from scratch ...")
    initial = demo.new_student(data, args.seed)
    scratch = demo.copy_model(initial, "mlp_student_scratch")
    fit = dict(epochs=args.epochs, seed=args.seed, verbose=2)
    demo.train_scratch(scratch, data, **fit)
    print("Distilling the same student from the teacher ...")
    distilled = demo.copy_model(initial, "mlp_student_distilled")
    demo.distill(
        teacher,
        distilled,
        data,
        alpha=args.alpha,
        temperature=args.temperature,
        **fit,
    )
    rows = []
    for label, model in (
        ("teacher", teacher),
        ("scratch student", scratch),
        ("distilled student", distilled),
    ):
        path = save_model(model, output / f"{model.name}.h5")
        rows.append(
            (
                label,
                model.count_params(),
                demo.accuracy(model, x_test, y_test),
                demo.agreement(teacher, model, x_test),
                path,
            )
        )
    print(
        f"\n{'model':<18} {'params':>8} {'test acc':>9} "
        f"{'agrees w/ teacher':>18}  file"
    )
    for label, params, acc, agree, path in rows:
        print(f"{label:<18} {params:>8,} {acc:>9.4f} {agree:>18.4f}  {path}")


def main(argv=None):
    """Entry point of `kd-keras`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = _parser().parse_args(argv)
    if args.command == "demo":
        _demo(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
