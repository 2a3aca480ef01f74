"""`kd-keras distill`: a student distilled from a teacher by any method of
the registry (`kd_keras.methods`)."""

import json
import textwrap
from pathlib import Path

# The method registry imports neither TensorFlow nor Keras.
from kd_keras import datasets, methods
from kd_keras.app.commands import arguments, models

HELP = "distil a student from a teacher"
DESCRIPTION = (
    "Trains a student (a .h5/.keras file, or a built-in 'mlp'/'cnn') from "
    "a teacher file and saves it (.h5 or .keras) with a JSON card."
)
EXAMPLES = """examples:
  kd-keras distill --teacher teacher.h5 --student mlp --dataset digits \\
      --output student.h5
  kd-keras distill --teacher fm_teacher.h5 --student my_student.h5 \\
      --dataset fashion_mnist --temperature 2 --alpha 0.5 --epochs 10 \\
      --output fm_student.h5
  kd-keras distill --teacher fm_teacher.h5 --student cnn \\
      --dataset fashion_mnist --method dkd --param nckd_weight=8 \\
      --param warmup=2 --output fm_dkd.h5
  kd-keras distill --teacher fm_teacher.h5 --student cnn \\
      --dataset fashion_mnist --method fitnet \\
      --param teacher_layer=pool_1 --param student_layer=pool_1 \\
      --output fm_fitnet.h5
  kd-keras distill --teacher fm_teacher.h5 --teacher other_teacher.h5 \\
      --student cnn --dataset fashion_mnist --output fm_two_teachers.h5
  kd-keras distill --teacher fm_teacher.h5 --student cnn \\
      --dataset fashion_mnist --method takd --param assistant=cnn \\
      --output fm_takd.h5"""


def _value(value):
    """A default as `--param` takes it: JSON, strings unquoted."""
    return value if isinstance(value, str) else json.dumps(value)


def methods_help(width=80):
    """The methods paragraph of `kd-keras distill --help`, from the
    registry: each method's name, summary and parameters with defaults."""
    column = 2 + max(map(len, methods.REGISTRY)) + 2
    lines = ["methods (--method NAME; in brackets, parameters and defaults):"]
    groups = {
        " losses (--param KEY=VALUE sets the loss's own arguments and "
        "the weight of its term):": methods.METHODS,
        " schemes (--param KEY=VALUE sets their parameters; they distil "
        "with Hinton KD at --temperature):": methods.SCHEMES,
    }
    for heading, group in groups.items():
        lines += textwrap.wrap(heading, width, subsequent_indent="   ")
        for name, method in group.items():
            settings = [
                f"{key}={what}" for key, what in method.required.items()
            ]
            settings += [f"{k}={_value(v)}" for k, v in method.defaults.items()]
            if not method.is_scheme and method.weight != 1.0:
                settings.append(f"weight={_value(method.weight)}")
            text = method.summary
            if not method.teacher:
                text += ", no --teacher"
            if settings:
                text += f" [{', '.join(settings)}]"
            lines += textwrap.wrap(
                text,
                width,
                initial_indent=f"  {name}".ljust(column),
                subsequent_indent=" " * column,
                break_on_hyphens=False,
            )
    return "\n".join(lines)


def add_arguments(parser):
    parser.epilog += "\n\n" + methods_help()
    arguments.add_teachers(
        parser,
        required=False,
        help_text="the teacher's .h5/.keras file; repeat for an ensemble of "
        "teachers (not with --method dml)",
    )
    arguments.add_student(parser)
    arguments.add_training(parser)
    arguments.add_distillation(parser)
    arguments.add_patience(parser)
    parser.add_argument(
        "--method",
        choices=list(methods.REGISTRY),
        default="kd",
        help="distillation method (default: kd)",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an argument of the method's loss, or its term's weight; "
        "repeat for several",
    )
    parser.add_argument(
        "--teacher-store",
        type=Path,
        help="a folder written by `kd-keras store build` for this teacher "
        "and dataset: the teacher's outputs are read from it instead of "
        "computed",
    )
    parser.add_argument("--output", required=True, type=Path)


def method_parameters(params):
    """The `--param KEY=VALUE` options as a dict of parsed values."""
    parsed = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--param takes KEY=VALUE. Received: {item!r}")
        if key == "temperature":
            raise ValueError(
                "Set the temperature with --temperature, not --param: it "
                "applies to every method that has one."
            )
        parsed[key] = methods.parse_value(value)
    return parsed


def check_required(args, parameters):
    """A --method without its required --param fails at once (after a
    scheme's unknown --param, which is the likelier typo)."""
    method = methods.REGISTRY[args.method]
    if method.is_scheme:
        methods.check_scheme(args.method, parameters)
    required = method.required
    missing = {k: v for k, v in required.items() if k not in parameters}
    if missing:
        raise ValueError(
            f"--method {args.method} needs "
            + " ".join(f"--param {k}={v}" for k, v in missing.items())
            + "."
        )


def check_method(args, parameters):
    """Bad --method/--param/--teacher values fail before data is loaded."""
    method = methods.REGISTRY[args.method]
    if method.is_scheme:
        methods.check_scheme(args.method, parameters)
    else:
        methods.distillation_losses(args.method, **parameters)
    if method.teacher != bool(args.teacher):
        raise ValueError(
            f"{args.method} trains students together without a teacher: "
            "drop --teacher."
            if args.teacher
            else f"--method {args.method} needs --teacher."
        )


def check_store(args, parameters, store):
    """A --teacher-store without the teacher layer --method reads fails
    before data is loaded."""
    layer = parameters.get("teacher_layer")
    if layer is not None and layer not in store.teacher_layers:
        raise ValueError(
            f"--teacher-store {str(args.teacher_store)!r} holds the "
            "teacher's logits and the outputs of "
            f"{list(store.teacher_layers) or 'no layer'}; --method "
            f"{args.method} reads {layer!r}: build the store again with "
            f"--teacher-layer {layer}."
        )


def check(args):
    models.check_output_free(args)
    datasets.check(args.dataset)
    models.check_inputs_exist(args)
    check_required(args, method_parameters(args.param))


def run(args):
    from kd_keras.app import data as app_data
    from kd_keras.app import protocol
    from kd_keras.saving import check_format

    parameters = method_parameters(args.param)
    check_method(args, parameters)
    store = None
    if args.teacher_store:
        from kd_keras.teacher_outputs import TeacherStore

        store = TeacherStore(args.teacher_store)
        check_store(args, parameters, store)
    data = app_data.load_for(args)
    teacher = models.teacher(args, data)
    student = models.student(args, data)
    # Before training: an --output format Keras cannot load it back from.
    check_format(student, args.output)
    defaults = protocol.settings_for(
        data.architecture,
        temperature=args.temperature,
        alpha=args.alpha,
        epochs=args.epochs,
        patience=args.patience,
        batch_size=args.batch_size,
    )
    settings = {
        "method": args.method,
        **{
            key: defaults[key]
            for key in ("temperature", "alpha", "epochs", "patience")
        },
        "batch_size": defaults["batch_size"],
        "parameters": parameters,
        "teacher": [str(path) for path in args.teacher],
    }
    train, cache = data.distillation, "auto"
    if store is not None and data.is_folder:
        # A pipeline is read in a new order each epoch: train from the
        # store's own records, which hold the images and their labels.
        train = store
    elif store is not None:
        cache = store
    elif data.is_folder:
        # The pipeline gives the same images each epoch (augment inside
        # the model): the teacher runs once, not at every step.
        cache = True
    if methods.REGISTRY[args.method].is_scheme:
        _train_scheme(
            args,
            teacher,
            student,
            (train, data.validation),
            settings,
            parameters,
            cache,
        )
    else:
        losses, weights = methods.distillation_losses(
            args.method, settings["temperature"], **parameters
        )
        protocol.distill(
            teacher,
            student,
            (train, data.validation),
            settings,
            args.seed,
            distillation_loss=losses,
            distillation_loss_weights=weights,
            cache=cache,
            verbose=arguments.progress(args),
        )
    models.save_with_card(student, args, data, args.method, settings)
    models.print_teacher(teacher, args, data, student)


def _train_scheme(args, teacher, student, data, settings, parameters, cache):
    """Trains `student` with the scheme `--method`, stopping early on the
    validation data of `data`, `(train, validation)`."""
    import keras

    from kd_keras.app import protocol

    # Mutual learning logs each student's accuracy under its name.
    monitor = "val_accuracy"
    if args.method == "dml":
        monitor = f"val_{student.name}_accuracy"
    train, validation = data
    if not isinstance(train, tuple):
        raise ValueError(
            f"--method {args.method} trains on arrays in memory: use a "
            "bundled dataset or a .npz file, or a loss method (kd, dkd, "
            "...) on a folder of images."
        )
    keras.utils.set_random_seed(args.seed)
    methods.train_scheme(
        args.method,
        teacher,
        student,
        *train,
        alpha=settings["alpha"],
        temperature=settings["temperature"],
        fit_kwargs={
            "epochs": settings["epochs"],
            "batch_size": settings["batch_size"],
            "validation_data": validation,
            "callbacks": [
                protocol.early_stopping(settings["patience"], monitor)
            ],
            "verbose": arguments.progress(args),
        },
        load=lambda path: models.load(path, args),
        cache=cache,
        **parameters,
    )
