"""The commands of `kd-keras`, one module each.

A command module has `HELP` (its line in `kd-keras --help`), `DESCRIPTION`,
`EXAMPLES`, `add_arguments(parser)` and `run(args)`. A module imports no
TensorFlow at its top: `kd-keras --help` and mistakes in the arguments are
answered before TensorFlow loads; `run` imports what it needs.
"""

from kd_keras.app.commands import (
    demo,
    distill,
    evaluate,
    export,
    report,
    store,
    train_teacher,
    tune,
)

COMMANDS = {
    "demo": demo,
    "train-teacher": train_teacher,
    "distill": distill,
    "tune": tune,
    "store": store,
    "evaluate": evaluate,
    "report": report,
    "export": export,
}
