"""`kd-keras tune`: a diagnosis and a KerasTuner search of the
distillation settings, run by `kd_keras.app.tune`."""

import sys
from pathlib import Path

from kd_keras import datasets, methods
from kd_keras.app.commands import arguments, models

HELP = "search T, alpha and the learning rate with KerasTuner"
DESCRIPTION = (
    "Diagnoses the pair first (the teacher's validation accuracy against a "
    "student trained alone, and how much its soft targets say at each T), "
    "then searches the distillation settings with KerasTuner: every trial "
    "starts from the same student, trains from the teacher's outputs "
    "computed once for the whole search, and is scored on a validation "
    "split of the training data. Writes diagnosis.txt, trials.csv, a T x "
    "alpha heat-map, the search's progress and result.txt to the run "
    "folder, saves the best student with its card, and prints its test "
    "accuracy next to the scratch twin's, with a warning when it is below. "
    "The first trial tries the defaults. Run again, an interrupted search "
    "resumes."
)
EXAMPLES = """examples:
  kd-keras tune --teacher saved_models/digits_mlp_teacher.h5 --student mlp \\
      --dataset digits --trials 12 --output tuned_student.h5
  kd-keras tune --teacher fm_teacher.h5 --student cnn \\
      --dataset fashion_mnist --tuner hyperband --epochs 9 \\
      --method kd --method dist --output fm_tuned.h5"""


def add_arguments(parser):
    arguments.add_teachers(
        parser,
        required=True,
        help_text="the teacher's .h5/.keras file; repeat for an ensemble",
    )
    arguments.add_student(parser)
    arguments.add_training(parser)
    arguments.add_patience(parser)
    parser.add_argument(
        "--trials",
        type=arguments.positive_integer("--trials"),
        default=10,
        help="number of trials; hyperband sets its own (default: 10)",
    )
    parser.add_argument(
        "--tuner",
        choices=("random", "bayesian", "hyperband"),
        default="random",
        help="KerasTuner's search algorithm (default: random)",
    )
    parser.add_argument(
        "--method",
        action="append",
        choices=[n for n, m in methods.METHODS.items() if not m.required],
        help="a method to search; repeat for several (default: kd)",
    )
    parser.add_argument(
        "--run-dir", help="the run folder (default: runs/tune_<dataset>)"
    )
    parser.add_argument("--output", required=True, type=Path)


def check(args):
    models.check_output_free(args)
    datasets.check(args.dataset)
    models.check_inputs_exist(args)


def run(args):
    from kd_keras.app import data as app_data
    from kd_keras.app import tune
    from kd_keras.saving import check_format

    # Every trial trains from the teacher's outputs computed once, on
    # arrays: a folder's images are read into memory.
    data = app_data.load_for(args).in_memory()
    teacher = models.teacher(args, data)
    student = models.student(args, data)
    # Before training: an --output format Keras cannot load it back from.
    check_format(student, args.output)
    run_dir = Path(
        args.run_dir or Path("runs") / f"tune_{Path(args.dataset).stem}"
    )
    result = tune.run(
        teacher,
        student,
        data,
        run_dir,
        trials=args.trials,
        epochs=args.epochs,
        patience=args.patience,
        batch_size=args.batch_size,
        tuner=args.tuner,
        methods=args.method or ["kd"],
        seed=args.seed,
        overwrite=args.overwrite,
        verbose=arguments.progress(args),
    )
    best = result["best"]
    settings = dict(best.hyperparameters)
    models.save_with_card(
        best.student,
        args,
        data,
        settings.pop("method"),
        {
            **settings,
            "validation_accuracy": round(best.validation_accuracy, 4),
            "tuner": args.tuner,
            "trials": len(best.trials),
            "teacher": [str(path) for path in args.teacher],
        },
    )
    print("\n" + "\n".join(result["result"]))
    print(f"Diagnosis, trials.csv and plots in {run_dir}/.")
    if result["warning"]:
        print(f"kd-keras tune: warning: {result['warning']}", file=sys.stderr)
