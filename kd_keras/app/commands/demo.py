"""`kd-keras demo`: does distillation pay off? A teacher and three twins of
a student, run by `kd_keras.app.demo`."""

from pathlib import Path

from kd_keras import datasets
from kd_keras.app.commands import arguments, models

HELP = "does distillation pay off? a teacher and three student twins"
DESCRIPTION = (
    "Few labels, many inputs: trains a teacher (or takes --teacher), then "
    "three twins of the student from the same weights: on the labelled "
    "samples alone (scratch), on the teacher's top-class pseudo-labels, and "
    "distilled from the teacher's soft targets. Each stops on a validation "
    "split carved from the training data; the test set is scored once. "
    "Prints the verdict, accuracy, parameters, file size, latency and "
    "teacher agreement; saves each model as .h5 with a JSON card, and a "
    "report with plots."
)
EXAMPLES = """examples:
  kd-keras demo
  kd-keras demo --labels 300
  kd-keras demo --labels all
  kd-keras demo --dataset fashion_mnist \\
      --teacher saved_models/fashion_mnist_cnn_teacher.h5
  kd-keras demo --seed 1 --models-dir my_models --report-dir my_run"""


def add_arguments(parser):
    arguments.add_training(parser)
    arguments.add_distillation(parser)
    parser.add_argument(
        "--labels",
        type=arguments.labels,
        help="labelled training samples, or 'all' (default: 1%% of the "
        "training set, at least 5 per class)",
    )
    arguments.add_patience(parser)
    parser.add_argument(
        "--teacher-epochs",
        type=arguments.positive_integer("--teacher-epochs"),
        help="teacher epochs (default: per dataset, at most --epochs)",
    )
    parser.add_argument(
        "--teacher",
        type=Path,
        help="a trained teacher .h5/.keras file, used instead of training one",
    )
    parser.add_argument(
        "--models-dir",
        default="saved_models",
        help="folder of the .h5 files (default: saved_models)",
    )
    parser.add_argument(
        "--report-dir", help="folder of the report (default: runs/demo_<data>)"
    )


def check(args):
    if Path(args.dataset).is_dir():
        raise ValueError(
            "kd-keras demo plays its scenario (labels hidden from a labelled "
            "data set) on a bundled dataset or a .npz file. For a folder of "
            "images, train on it with kd-keras train-teacher and distill."
        )
    datasets.check(args.dataset)
    if args.teacher is not None:
        models.check_file(args.teacher, "--teacher")


def run(args):
    from kd_keras.app import demo, report

    teacher = models.load(args.teacher, args) if args.teacher else None
    record = demo.run(
        args.dataset,
        teacher=teacher,
        models_dir=args.models_dir,
        report_dir=args.report_dir,
        seed=args.seed,
        overwrite=args.overwrite,
        labels=args.labels,
        teacher_epochs=args.teacher_epochs,
        epochs=args.epochs,
        patience=args.patience,
        batch_size=args.batch_size,
        alpha=args.alpha,
        temperature=args.temperature,
    )
    _, report_dir = demo.output_paths(
        args.dataset, args.models_dir, args.report_dir
    )
    print()
    print(report.table(record))
    print()
    print(record["verdict"])
    print(
        f"\nModels and cards in {args.models_dir}/; report, plots and "
        f"run.json in {report_dir}/."
    )
