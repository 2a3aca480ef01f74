"""`kd-keras train-teacher`: a built-in teacher trained under the
application's protocol."""

from pathlib import Path

from kd_keras import datasets
from kd_keras.app.commands import arguments, models

HELP = "train a built-in teacher"
DESCRIPTION = (
    "Trains the built-in teacher (mlp or cnn) on a dataset and saves it as "
    ".h5 with a JSON card."
)
EXAMPLES = """examples:
  kd-keras train-teacher --dataset digits --output teacher.h5
  kd-keras train-teacher --dataset fashion_mnist --architecture cnn \\
      --epochs 8 --output fm_teacher.h5"""


def add_arguments(parser):
    arguments.add_training(parser)
    parser.add_argument(
        "--architecture",
        choices=("mlp", "cnn"),
        help="default: cnn for images, mlp otherwise",
    )
    parser.add_argument(
        "--output", required=True, type=Path, help="the .h5 file to write"
    )


def check(args):
    models.check_output_free(args)
    datasets.check(args.dataset)


def run(args):
    from kd_keras.app import data as app_data
    from kd_keras.app import protocol
    from kd_keras.saving import check_format

    data = app_data.load_for(args)
    architecture = args.architecture or data.architecture
    settings = protocol.settings_for(
        architecture, teacher_epochs=args.epochs, batch_size=args.batch_size
    )
    epochs, batch_size = settings["teacher_epochs"], settings["batch_size"]
    teacher = data.new_model(architecture, "teacher", args.seed)
    # Before training: an --output format Keras cannot load it back from.
    check_format(teacher, args.output)
    protocol.fit_teacher(
        teacher,
        data.train,
        data.validation,
        epochs,
        batch_size,
        args.seed,
        verbose=arguments.progress(args),
    )
    models.save_with_card(
        teacher,
        args,
        data,
        "supervised",
        {
            "architecture": architecture,
            "epochs": epochs,
            "batch_size": batch_size,
        },
    )
