"""`kd-keras report`: the report of a run drawn again from its run.json."""

from pathlib import Path

from kd_keras.app.commands.models import OVERWRITE
from kd_keras.files import check_free

HELP = "redraw the report of a run"
DESCRIPTION = (
    "Draws report.md and the PNG plots of a run folder again from its "
    "run.json; existing ones are replaced only with --overwrite."
)
EXAMPLES = """examples:
  kd-keras report runs/demo_digits --overwrite"""


def add_arguments(parser):
    parser.add_argument("run_dir", type=Path)
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing report.md and plots",
    )


def check(args):
    if not (args.run_dir / "run.json").is_file():
        raise FileNotFoundError(
            f"{str(args.run_dir)!r} is not a run folder: it has no run.json. "
            "`kd-keras demo` writes one."
        )


def run(args):
    from kd_keras.app import report

    report.read_run(args.run_dir)  # a folder without run.json fails first
    check_free(report.report_paths(args.run_dir), args.overwrite, OVERWRITE)
    for path in report.write_report(args.run_dir, overwrite=args.overwrite):
        print(path)
