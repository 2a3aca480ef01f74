import json

import pytest

from kd_keras.app import report


def fake_run():
    history = {
        "accuracy": [0.5, 0.8],
        "val_accuracy": [0.4, 0.7],
        "val_loss": [1.0, 0.6],
    }
    model = {
        "parameters": 1234,
        "file_bytes": 2048,
        "test_accuracy": 0.9,
        "latency_ms": 0.25,
        "teacher_agreement": 0.95,
    }
    return {
        "dataset": "digits",
        "settings": {"epochs": 2},
        "samples": {"labelled": 20, "unlabelled": 80},
        "verdict": "Distillation helped: ...",
        "validation_accuracy": {"teacher": 0.9},
        "models": [
            {**model, "role": role}
            for role in ("teacher", "scratch student", "distilled student")
        ],
        "histories": {
            "student_scratch": history,
            "student_distilled": {**history, "val_student_loss": [0.9, 0.5]},
        },
        "confusion_matrix": [[3, 1], [0, 4]],
    }


def test_table():
    lines = report.table(fake_run()).splitlines()
    assert lines[2] == (
        "| teacher | 1,234 | 2 KiB | 0.9000 | 0.250 ms | 0.9500 |"
    )
    assert len(lines) == 5


def test_write_report(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps(fake_run()))
    written = report.write_report(tmp_path)
    assert [p.name for p in written] == [
        "report.md",
        "curves.png",
        "comparison.png",
        "confusion.png",
    ]
    for png in written[1:]:
        assert png.read_bytes()[:4] == b"\x89PNG"
    text = written[0].read_text()
    assert text.splitlines()[2] == "Distillation helped: ..."
    assert "Samples: 20 labelled, 80 unlabelled." in text
    assert "![curves](curves.png)" in text


def test_not_a_run_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        report.write_report(tmp_path)


def test_a_run_of_an_older_demo(tmp_path, capsys):
    from kd_keras.app import cli

    run = fake_run()
    del run["verdict"], run["samples"]
    (tmp_path / "run.json").write_text(json.dumps(run))
    assert cli.main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "has no 'samples', 'verdict': an older `kd-keras demo`" in err
    assert not (tmp_path / "report.md").exists()


def test_a_report_is_replaced_only_with_overwrite(tmp_path, capsys):
    from kd_keras.app import cli

    (tmp_path / "run.json").write_text(json.dumps(fake_run()))
    report.write_report(tmp_path)
    (tmp_path / "report.md").write_text("my notes")
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        report.write_report(tmp_path)
    assert cli.main(["report", str(tmp_path)]) == 1
    assert "exist; pass --overwrite to replace them." in capsys.readouterr().err
    assert (tmp_path / "report.md").read_text() == "my notes"
    assert cli.main(["report", str(tmp_path), "--overwrite"]) == 0
    assert (tmp_path / "report.md").read_text().startswith("# Distillation")


def test_the_comparison_starts_at_zero_and_ends_at_one(monkeypatch):
    """Its axis ran from 0.72 to 1.10: the cut base and the room above 1.0
    made the gaps look larger than they are."""
    figures = []
    monkeypatch.setattr(
        report, "save_png", lambda fig, path: figures.append(fig)
    )
    models = [
        {"role": role, "test_accuracy": accuracy, "parameters": 10}
        for role, accuracy in (
            ("teacher", 0.97),
            ("scratch student", 0.82),
            ("distilled student", 0.96),
        )
    ]
    report._comparison({"dataset": "digits", "models": models}, "c.png")
    assert figures[0].axes[0].get_ylim() == (0.0, 1.0)
