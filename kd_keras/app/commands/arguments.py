"""The arguments several commands share, and the checks of their values.

A number is checked by the check of `kd_keras.hyperparameters` that the
library applies to the same setting, so the command line and the library
accept the same values.
"""

import argparse
import math
import sys
from pathlib import Path

from kd_keras import hyperparameters
from kd_keras.datasets import NAMES as DATASETS


def number(flag, check, convert=float):
    """An argparse `type`: the text converted by `convert`, then checked.

    Args:
        flag: The option, as the user typed it (`"--temperature"`), named
            by the error message.
        check: `check(name, value)` returning the value or raising
            (`kd_keras.hyperparameters.check_positive`, ...).
        convert: `float` or `int`. Defaults to `float`.
    """

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            kind = "a whole number" if convert is int else "a number"
            raise argparse.ArgumentTypeError(
                f"{flag} must be {kind}. Received: {text!r}"
            ) from None
        try:
            return check(flag, value)
        except (TypeError, ValueError) as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


def positive_integer(flag):
    """An argparse `type` of whole numbers `>= 1`."""
    return number(
        flag,
        lambda name, value: hyperparameters.check_integer(name, value, 1),
        int,
    )


def labels(text):
    """`--labels`: a number of labelled samples, or `all`."""
    if text == "all":
        return math.inf
    return positive_integer("--labels")(text)


def command(subparsers, name, help_text, description, examples, common=True):
    """A command's parser, with the options every command has unless
    `common` is false (a command of commands, as `store`, whose own
    commands have them)."""
    parser = subparsers.add_parser(
        name,
        help=help_text,
        description=description,
        epilog=examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if not common:
        return parser
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print no progress, only the results and errors",
    )
    loudness.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show Python tracebacks of errors, and what TensorFlow prints",
    )
    parser.add_argument(
        "--unsafe",
        action="store_true",
        help="load model files with safe_mode=False, running the Python "
        "code of their Lambda layers: only for files you trust",
    )
    return parser


def image_size(text):
    """`--image-size`: `32` or `32x48` (height x width)."""
    parts = text.lower().split("x")
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(
            f"--image-size takes SIZE or HEIGHTxWIDTH. Received: {text!r}"
        )
    sizes = [positive_integer("--image-size")(part) for part in parts]
    return (sizes[0], sizes[-1])


def add_dataset(parser, what="the data"):
    """`--dataset` (a name, a `.npz` file or a folder of images), and how
    a folder's images are read: `--image-size`, `--color-mode`."""
    parser.add_argument(
        "--dataset",
        default="digits",
        help=f"{what}: a dataset name ({', '.join(DATASETS)}), a .npz "
        "file, or a folder of images holding train/<class>/ and optionally "
        "val/, test/ and unlabelled/ (default: digits)",
    )
    parser.add_argument(
        "--image-size",
        type=image_size,
        metavar="SIZE",
        help="size the images of a folder are read at, SIZE or "
        "HEIGHTxWIDTH (default: the first training image's)",
    )
    parser.add_argument(
        "--color-mode",
        choices=("rgb", "grayscale", "rgba"),
        default="rgb",
        help="colour mode the images of a folder are read in (default: rgb)",
    )


def progress(args):
    """Keras' `verbose` for the command's training: none with `--quiet`; on
    a terminal a bar per epoch updated in place (1), otherwise one line
    per epoch (2), so that a log file holds no control characters."""
    if args.quiet:
        return 0
    return 1 if sys.stdout.isatty() else 2


def add_training(parser):
    """`--dataset` and its options, `--epochs`, `--batch-size`, `--seed`,
    `--overwrite`."""
    add_dataset(parser)
    parser.add_argument(
        "--epochs",
        type=positive_integer("--epochs"),
        help="training epochs; at most, for students, which stop early on "
        "a validation split of the training data (default: per dataset)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_integer("--batch-size"),
        help="batch size (default: per dataset)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed (default: 0)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing outputs"
    )


def add_distillation(parser):
    """`--temperature` and `--alpha`."""
    parser.add_argument(
        "--temperature",
        type=number("--temperature", hyperparameters.check_positive),
        help="softening temperature T (default: "
        f"{hyperparameters.DEFAULT_TEMPERATURE:g})",
    )
    parser.add_argument(
        "--alpha",
        type=number("--alpha", hyperparameters.check_weight),
        help="weight of the hard-label loss (default: "
        f"{hyperparameters.DEFAULT_ALPHA:g})",
    )


def add_patience(parser):
    """`--patience`."""
    parser.add_argument(
        "--patience",
        type=positive_integer("--patience"),
        help="epochs without a better validation accuracy before a student "
        "stops, keeping its best epoch (default: per dataset)",
    )


def add_teachers(parser, required, help_text):
    """`--teacher`, repeatable, and `--teacher-average`."""
    parser.add_argument(
        "--teacher",
        action="append",
        required=required,
        default=None if required else [],
        type=Path,
        help=help_text,
    )
    parser.add_argument(
        "--teacher-average",
        choices=("probabilities", "logits"),
        default="probabilities",
        help="how several teachers are averaged (default: probabilities)",
    )


def add_student(parser):
    """`--student` and, for a Keras Application, `--weights`."""
    parser.add_argument(
        "--student",
        required=True,
        help="a .h5/.keras file, a built-in mlp or cnn, or a Keras "
        "Application (MobileNetV3Small, EfficientNetB0, MobileNetV2, ...) "
        "for images",
    )
    parser.add_argument(
        "--weights",
        choices=("none", "imagenet"),
        default="none",
        help="starting weights of a Keras Application student: none (from "
        "scratch, offline) or imagenet (downloaded by Keras) (default: none)",
    )
