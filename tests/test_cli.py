import subprocess
import sys

import pytest

from kd_keras import cli


def test_demo_trains_and_saves_three_models(tmp_path, capsys):
    output = tmp_path / "run"
    cli.main(
        [
            "demo",
            "--epochs",
            "1",
            "--teacher-epochs",
            "1",
            "--output",
            str(output),
        ]
    )
    table = capsys.readouterr().out
    for label in ("teacher", "scratch student", "distilled student"):
        assert label in table
    assert sorted(p.name for p in output.iterdir()) == [
        "mlp_student_distilled.h5",
        "mlp_student_scratch.h5",
        "mlp_teacher.h5",
    ]


def test_demo_refuses_an_existing_output(tmp_path):
    with pytest.raises(SystemExit, match="exists"):
        cli.main(["demo", "--output", str(tmp_path)])


@pytest.mark.parametrize("epochs", ["0", "-3"])
def test_demo_rejects_non_positive_epochs(epochs, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["demo", "--epochs", epochs])
    assert exit_info.value.code == 2
    assert "must be > 0" in capsys.readouterr().err


def test_console_script_help():
    result = subprocess.run(
        [sys.executable, "-m", "kd_keras.cli", "demo", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "examples:" in result.stdout
