"""`kd-keras store build`: a teacher's outputs on a dataset's training
split, written once to a `TeacherStore` that later runs read."""

from pathlib import Path

from kd_keras import datasets
from kd_keras.app.commands import arguments, models

HELP = "teacher outputs on disk, computed once"
DESCRIPTION = (
    "A store of a teacher's outputs on a dataset's training split, which "
    "later runs read instead of running the teacher (kd-keras distill "
    "--teacher-store)."
)
# Its commands (`build`) have the options every command has.
HAS_SUBCOMMANDS = True
EXAMPLES = """examples:
  kd-keras store build --teacher fm_teacher.h5 --dataset fashion_mnist \\
      --top-k 5 --output fm_store
  kd-keras distill --teacher fm_teacher.h5 --teacher-store fm_store \\
      --student mlp --dataset fashion_mnist --output fm_student.h5"""


def add_arguments(parser):
    build = arguments.command(
        parser.add_subparsers(
            dest="store_command", metavar="COMMAND", required=True
        ),
        "build",
        "write a teacher's outputs to a folder",
        "Runs the teacher once over the training split that `kd-keras "
        "distill` trains on (the validation split carved out) and writes "
        "its outputs, with the samples, to a folder of shards and a "
        "manifest. An interrupted build resumes when run again.",
        EXAMPLES,
    )
    arguments.add_teachers(
        build,
        required=True,
        help_text="the teacher's .h5/.keras file; repeat for an ensemble",
    )
    arguments.add_dataset(build)
    build.add_argument(
        "--dtype",
        choices=("float16", "float32"),
        default="float16",
        help="of the stored outputs (default: float16)",
    )
    build.add_argument(
        "--top-k",
        type=arguments.positive_integer("--top-k"),
        help="logits kept per sample, for softmax-based methods (default: all)",
    )
    build.add_argument(
        "--teacher-layer",
        action="append",
        default=[],
        help="a teacher layer whose outputs a feature method reads; repeat "
        "for several",
    )
    build.add_argument(
        "--batch-size",
        type=arguments.positive_integer("--batch-size"),
        default=256,
        help="samples per teacher call (default: 256)",
    )
    build.add_argument("--output", required=True, type=Path)
    build.add_argument(
        "--overwrite", action="store_true", help="replace an existing store"
    )


def check(args):
    datasets.check(args.dataset)
    models.check_inputs_exist(args)


def run(args):
    from kd_keras.app import data as app_data
    from kd_keras.teacher_outputs import TeacherStore

    data = app_data.load_for(args)
    teacher = models.teacher(args, data)
    store = TeacherStore.build(
        teacher,
        data.distillation,
        args.output,
        dtype=args.dtype,
        top_k=args.top_k,
        teacher_layers=args.teacher_layer,
        batch_size=args.batch_size,
        overwrite=args.overwrite,
        verbose=arguments.progress(args) > 0,
    )
    print(store)
