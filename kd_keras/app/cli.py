"""The `kd-keras` command line: its parser, made of the commands' own
(`kd_keras.app.commands`), and how it reports errors."""

import argparse
import os
import re
import sys

from kd_keras import __version__
from kd_keras import quiet as quiet_module
from kd_keras.app.commands import COMMANDS, arguments


class _Parser(argparse.ArgumentParser):
    """argparse, whose usage errors are one line on stderr and exit
    status 1, as every other error of the command line."""

    def error(self, message):
        # "argument --epochs: --epochs must be >= 1": the flag once.
        message = re.sub(r"^argument (\S+): \1 ", r"\1 ", message)
        self.exit(1, f"{self.prog}: error: {message}\n")


def parser():
    """The parser of `kd-keras` and its commands."""
    main = _Parser(
        prog="kd-keras",
        description="Knowledge distillation for Keras: train small "
        "students from large teachers.",
    )
    main.add_argument(
        "--version", action="version", version=f"kd-keras {__version__}"
    )
    commands = main.add_subparsers(
        dest="command", metavar="COMMAND", required=True
    )
    for name, command in COMMANDS.items():
        command.add_arguments(
            arguments.command(
                commands,
                name,
                command.HELP,
                command.DESCRIPTION,
                command.EXAMPLES,
                common=not getattr(command, "HAS_SUBCOMMANDS", False),
            )
        )
    return main


def _import_tensorflow(quiet):
    """Imports TensorFlow with its info and warning logs off, and, if
    `quiet`, without the lines it writes to stderr while it starts.

    TF_CPP_MIN_LOG_LEVEL must be set before TensorFlow loads, and does not
    silence the "Could not find cuda drivers" lines of its CUDA stub
    (tensorflow/tensorflow#100442) nor, at level 2, the "failed call to
    cuInit" error of its first look for devices: both go to file
    descriptor 2, silenced while TensorFlow loads and lists its devices.
    Unless `quiet`, what TensorFlow prints later (the TFLite converter's
    lines) is let through too (`kd_keras.quiet.SHOW_TENSORFLOW`).
    """
    # Level 3 also hides the runtime's error lines that are no error of
    # the user's (oneDNN's "supports DT_HALF only on AVX-512").
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3" if quiet else "0")
    quiet_module.SHOW_TENSORFLOW = not quiet
    with quiet_module.silenced(streams=(2,)):
        import tensorflow as tf

        tf.config.list_physical_devices()


def main(argv=None):
    """Entry point of `kd-keras`; returns the exit status.

    The arguments, and the files and names they give, are checked before
    TensorFlow loads (seconds): a mistake is reported at once, in one line
    on stderr, with exit status 1.
    """
    args = parser().parse_args(argv)
    command = COMMANDS[args.command]
    try:
        if hasattr(command, "check"):
            command.check(args)
        _import_tensorflow(quiet=not args.verbose)
        command.run(args)
    except (OSError, ValueError, TypeError) as error:
        if args.verbose:
            raise
        message = " ".join(str(error).split())
        print(f"kd-keras {args.command}: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
