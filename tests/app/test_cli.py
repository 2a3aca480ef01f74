"""`kd-keras`: every command, its output files and its errors.

The commands run in this process (`kd_keras` below): a subprocess would
pay seconds of TensorFlow start-up per command. What only a fresh process
shows (an instant, quiet `--help`; TensorFlow's start-up lines silenced)
is tested in subprocesses.
"""

import json
import re
import subprocess
import sys
import time
import warnings

import keras
import numpy as np
import pytest
from in_process import kd_keras

import kd_keras as kd_keras_module
from kd_keras.app import cards, cli
from kd_keras.app.commands import COMMANDS
from kd_keras.saving import load_student as kd_keras_load


def distill_args(teacher, dataset, *options, params=()):
    """`kd-keras distill` of `teacher` (a path, or a list of paths) into an
    `mlp` student on `dataset`, with `options` and a `--param` for each of
    `params`."""
    teachers = teacher if isinstance(teacher, list) else [teacher]
    return [
        "distill",
        *(arg for path in teachers for arg in ("--teacher", path)),
        "--student",
        "mlp",
        "--dataset",
        dataset,
        *options,
        *(arg for param in params for arg in ("--param", param)),
    ]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder with a small learnable dataset as a .npz file."""
    folder = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)).astype("float32")
    y = np.argmax(x[:, :3], axis=1)
    np.savez(
        folder / "tiny.npz",
        x_train=x[:240],
        y_train=y[:240],
        x_test=x[240:],
        y_test=y[240:],
    )
    return folder


@pytest.fixture(scope="module")
def teacher(workdir):
    result = kd_keras(
        "train-teacher",
        "--dataset",
        "tiny.npz",
        "--epochs",
        "15",
        "--output",
        "teacher.h5",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    assert "teacher.h5: test accuracy" in result.stdout
    return workdir / "teacher.h5"


def test_train_teacher_writes_model_and_card(teacher):
    card = json.loads(cards.card_path(teacher).read_text())
    assert card["dataset"] == "tiny.npz" and card["seed"] == 0
    assert card["test_accuracy"] > 0.8
    assert card["parameters"] > 0 and card["file_bytes"] > 0
    assert {"tensorflow", "keras", "kd_keras"} <= set(card["versions"])


@pytest.fixture(scope="module")
def student(workdir, teacher):
    result = kd_keras(
        *distill_args(
            teacher,
            "tiny.npz",
            "--epochs",
            "15",
            "--temperature",
            "2",
            "--alpha",
            "0.5",
            "--output",
            "student.h5",
        ),
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    return workdir / "student.h5"


def test_distill_writes_student_and_card(student):
    card = json.loads(cards.card_path(student).read_text())
    assert card["method"] == "kd"
    assert card["hyperparameters"]["temperature"] == 2.0
    assert card["hyperparameters"]["alpha"] == 0.5
    assert card["test_accuracy"] > 0.6


def test_evaluate(workdir, student, teacher):
    result = kd_keras(
        "evaluate",
        student,
        "--dataset",
        "tiny.npz",
        "--teacher",
        teacher,
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout
    assert "agreement with" in result.stdout


def test_export_int8(workdir, student):
    result = kd_keras(
        "export",
        student,
        "--dataset",
        "tiny.npz",
        "--quantize",
        "int8",
        "--output",
        "s.tflite",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    assert (workdir / "s.tflite").stat().st_size > 0
    assert "test accuracy TFLite" in result.stdout


def test_evaluate_reads_what_export_writes(workdir, tmp_path, capsys):
    """`evaluate` runs a `.tflite` file with the TFLite interpreter."""
    from kd_keras import datasets, export

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(8), keras.layers.Dense(3)]
    )
    keras_file, tflite_file = tmp_path / "s.h5", tmp_path / "s.tflite"
    model.save(keras_file)
    dataset = workdir / "tiny.npz"
    status, err = run_main(
        capsys,
        *("export", keras_file, "--dataset", dataset, "--quantize", "int8"),
        *("--output", tflite_file),
    )
    assert status == 0, err
    status = cli.main(
        [
            str(arg)
            for arg in ("evaluate", tflite_file, "--dataset", dataset)
            + ("--teacher", keras_file)
        ]
    )
    out, err = capsys.readouterr()
    assert status == 0, err
    (_, _), (x_test, y_test) = datasets.load(str(dataset))
    accuracy = export.tflite_accuracy(tflite_file.read_bytes(), x_test, y_test)
    assert f"s.tflite: test accuracy {accuracy:.4f}, " in out
    assert "ms/sample (TFLite, one thread)" in out
    agreement = float(re.search(r"agreement with .*: ([\d.]+)", out)[1])
    assert agreement >= 0.9  # int8 and float32 mostly agree


@pytest.mark.parametrize(
    "content,dataset,message",
    [
        (None, "tiny.npz", "No model file at"),
        (b"TFL3 but truncated", "tiny.npz", "Cannot read the TFLite file"),
        (
            "model",
            "digits",
            r"x has samples of shape \(64,\), but the inputs of the TFLite "
            r"model have shape \(6,\)",
        ),
    ],
)
def test_evaluate_a_bad_tflite_file(
    workdir, tmp_path, capsys, content, dataset, message
):
    from kd_keras import export

    path = tmp_path / "bad.tflite"
    if content == "model":
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
        content = export.to_tflite(model)
    if content is not None:
        path.write_bytes(content)
    data = workdir / dataset if dataset.endswith(".npz") else dataset
    status, err = run_main(capsys, "evaluate", path, "--dataset", data)
    assert status == 1
    assert len(err.strip().splitlines()) == 1
    assert re.search(message, err), err


def test_demo_and_report(workdir):
    args = (
        "demo",
        "--dataset",
        "tiny.npz",
        "--epochs",
        "2",
        "--teacher-epochs",
        "2",
        "--patience",
        "1",
        "--models-dir",
        "models",
        "--report-dir",
        "run",
    )
    result = kd_keras(*args, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "Training the teacher (mlp) for 2 epochs on all" in result.stdout
    roles = ("teacher", "student_scratch", "student_pseudo")
    roles += ("student_distilled",)
    for label in ("teacher", "scratch student", "pseudo-label student"):
        assert f"| {label} |" in result.stdout
    assert "| distilled student |" in result.stdout
    assert re.search(
        r"^Distillation (helped|hurt|made no difference): ", result.stdout, re.M
    )
    assert "15 labelled samples, 177 unlabelled" in result.stdout
    models = sorted(p.name for p in (workdir / "models").iterdir())
    assert models == sorted(
        f"demo_tiny_{role}.{ext}" for ext in ("h5", "h5.json") for role in roles
    )
    plots = [
        workdir / "run" / name
        for name in ("curves.png", "comparison.png", "confusion.png")
    ]
    for plot in plots:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        plot.unlink()
    result = kd_keras("report", "run", "--overwrite", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert all(plot.exists() for plot in plots)
    # A second run refuses to replace anything, before any training.
    before = (workdir / "models" / "demo_tiny_teacher.h5").read_bytes()
    result = kd_keras(*args, cwd=workdir)
    assert result.returncode == 1
    assert "exist; pass --overwrite to replace them." in result.stderr
    assert "Traceback" not in result.stderr and "Epoch" not in result.stdout
    assert (workdir / "models" / "demo_tiny_teacher.h5").read_bytes() == (
        before
    )


def run_main(capsys, *args):
    status = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.err


@pytest.mark.parametrize(
    "args,message",
    [
        (("evaluate", "absent.h5"), "No model file at 'absent.h5'"),
        (
            ("train-teacher", "--dataset", "imagenet", "--output", "t.h5"),
            "Known datasets: digits",
        ),
        (
            ("train-teacher", "--dataset", "partial.npz", "--output", "t.h5"),
            "lacks the arrays",
        ),
        (("evaluate", "corrupt.h5"), "corrupt"),
        (
            distill_args("teacher.h5", "digits", "--output", "x.h5"),
            r"the dataset has samples of shape \(64,\), but the inputs of the "
            r"teacher teacher.h5 have shape \(6,\)",
        ),
        (
            (
                "train-teacher",
                "--dataset",
                "tiny.npz",
                "--output",
                "teacher.h5",
            ),
            "teacher.h5, teacher.h5.json exist; pass --overwrite",
        ),
        (("report", "."), "is not a run folder"),
        (
            ("train-teacher", "--dataset", "tiny.npz", "--output", "t.pt"),
            "path must end in one of",
        ),
        (
            ("evaluate", "whole.keras", "--dataset", "tiny.npz"),
            "holds a whole Distiller",
        ),
    ],
)
def test_bad_input_one_line_and_non_zero(
    workdir, teacher, capsys, monkeypatch, args, message
):
    monkeypatch.chdir(workdir)
    np.savez(workdir / "partial.npz", x_train=np.zeros(3))
    (workdir / "corrupt.h5").write_bytes(b"not hdf5")
    if not (workdir / "whole.keras").exists():
        t = kd_keras_load(teacher)
        student = keras.models.clone_model(t)
        kd_keras_module.Distiller(t, student).save(workdir / "whole.keras")
    status, err = run_main(capsys, *args)
    assert status == 1
    assert len(err.strip().splitlines()) == 1
    assert re.search(message, err), err


def test_verbose_shows_the_traceback(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    with pytest.raises(FileNotFoundError):
        cli.main(["evaluate", "absent.h5", "--verbose"])


def test_help_is_instant_and_quiet(tmp_path):
    """`--help` loads neither TensorFlow nor Keras and writes no stderr."""
    code = """
import sys
import time
from kd_keras.app import cli
for argv in (["--help"], ["distill", "--help"]):
    try:
        cli.main(argv)
    except SystemExit:
        pass
print(sorted({"tensorflow", "keras"} & set(sys.modules)))
"""
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"
    assert "function_matching" in result.stdout
    assert result.stderr == ""


def test_a_command_prints_only_its_own_error(tmp_path):
    """TensorFlow's start-up lines (no CUDA drivers, cuInit) are silenced."""
    result = subprocess.run(
        [sys.executable, "-m", "kd_keras.app.cli", "evaluate", "absent.h5"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr == (
        "kd-keras evaluate: error: No model file at 'absent.h5'.\n"
    )


@pytest.mark.parametrize("epochs", ["0", "-3"])
def test_non_positive_epochs(epochs, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["demo", "--epochs", epochs])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == (
        f"kd-keras demo: error: --epochs must be >= 1. Received: "
        f"--epochs={epochs}\n"
    )


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_has_help_with_examples(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    assert f"kd-keras {command}" in capsys.readouterr().out


def test_demo_with_a_given_teacher(workdir, teacher, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    status = cli.main(
        [
            "demo",
            "--dataset",
            "tiny.npz",
            "--teacher",
            str(teacher),
            "--epochs",
            "1",
            "--models-dir",
            "given",
            "--report-dir",
            "given_run",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert (
        "Using the given teacher" in out and "Training the teacher" not in out
    )
    record = json.loads((workdir / "given_run" / "run.json").read_text())
    assert (
        record["models"][0]["parameters"]
        == json.loads(cards.card_path(teacher).read_text())["parameters"]
    )
    status, err = run_main(
        capsys, "demo", "--dataset", "digits", "--teacher", teacher
    )
    assert status == 1 and "the inputs of the teacher have shape (6,)" in err


def test_demo_refuses_to_replace_a_report(workdir, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    notes = workdir / "notes"
    notes.mkdir(exist_ok=True)
    (notes / "report.md").write_text("MY NOTES")
    status, err = run_main(
        capsys,
        "demo",
        "--dataset",
        "tiny.npz",
        "--models-dir",
        "notes_models",
        "--report-dir",
        "notes",
    )
    assert status == 1 and "report.md" in err
    assert (notes / "report.md").read_text() == "MY NOTES"


@pytest.mark.parametrize(
    "method, params, expected",
    [
        (
            "dkd",
            ["tckd_weight=2", "nckd_weight=4", "warmup=2"],
            {"tckd_weight": 2, "nckd_weight": 4, "warmup": 2},
        ),
        (
            "rkd",
            ["teacher_layer=dense_2", "student_layer=dense_0", "weight=2"],
            {
                "teacher_layer": "dense_2",
                "student_layer": "dense_0",
                "weight": 2,
            },
        ),
    ],
)
def test_distill_with_a_method_and_its_parameters(
    workdir, teacher, method, params, expected
):
    output = f"{method}.h5"
    result = kd_keras(
        *distill_args(
            teacher,
            "tiny.npz",
            "--epochs",
            "3",
            "--method",
            method,
            "--output",
            output,
            params=params,
        ),
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    card = json.loads(cards.card_path(workdir / output).read_text())
    assert card["method"] == method
    assert card["hyperparameters"]["parameters"] == expected
    # DKD's own alpha does not replace the hard-label weight.
    assert card["hyperparameters"]["alpha"] == 0.1


@pytest.mark.parametrize(
    "method, params, teachers",
    [
        ("born_again", ["generations=2"], 1),
        ("takd", ["assistant=mlp"], 1),
        ("dml", ["peers=1"], 0),
        ("function_matching", ["mixup_alpha=0.5"], 1),
        ("kd", [], 2),
    ],
)
def test_distill_with_a_scheme(workdir, teacher, method, params, teachers):
    output = f"scheme_{method}_{teachers}.h5"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = kd_keras(
            *distill_args(
                [teacher] * teachers,
                "tiny.npz",
                "--epochs",
                "2",
                "--method",
                method,
                "--output",
                output,
                params=params,
            ),
            cwd=workdir,
        )
    assert result.returncode == 0, result.stderr
    # Early stopping watches a metric the method logs.
    assert not [w for w in caught if "Early stopping" in str(w.message)]
    card = json.loads(cards.card_path(workdir / output).read_text())
    assert card["method"] == method
    assert len(card["hyperparameters"]["teacher"]) == teachers
    assert kd_keras_load(workdir / output).name == "mlp_student"


def test_tune(workdir, teacher):
    args = (
        *("tune", "--teacher", teacher, "--student", "mlp"),
        *("--dataset", "tiny.npz", "--trials", "3", "--epochs", "2"),
        *("--method", "kd", "--method", "dist", "--output", "tuned.h5"),
        *("--run-dir", "tune_run"),
    )
    result = kd_keras(*args, cwd=workdir)
    assert result.returncode == 0, result.stderr
    run = workdir / "tune_run"
    diagnosis = (run / "diagnosis.txt").read_text()
    assert "teacher validation accuracy" in diagnosis
    assert "T = 8: entropy" in diagnosis
    lines = (run / "trials.csv").read_text().splitlines()
    assert lines[0].startswith("trial_id,method,temperature,alpha")
    assert len(lines) == 4
    for plot in ("heatmap.png", "progress.png"):
        assert (run / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = json.loads((workdir / "tuned.h5.json").read_text())
    assert card["method"] in ("kd", "dist")
    assert {"temperature", "alpha", "learning_rate"} <= set(
        card["hyperparameters"]
    )
    assert 0 < card["hyperparameters"]["validation_accuracy"] <= 1
    test_line = re.search(
        r"Test accuracy: tuned student ([\d.]+), scratch twin ([\d.]+) "
        r"\([+-][\d.]+ points\), teacher.*",
        result.stdout,
    )
    # The report holds what the command printed, and the warning exactly
    # when the tuned student is below its scratch twin.
    report = (run / "result.txt").read_text()
    assert report.startswith("Best of 3 trials: ") and test_line[0] in report
    tuned, scratch = map(float, test_line.groups())
    below = "points below its scratch twin" in result.stderr
    assert below == (tuned < scratch) == ("Warning: " in report)
    assert kd_keras_load(workdir / "tuned.h5").name == "student"
    # Run again, it refuses to replace the student before any work.
    again = kd_keras(*args, cwd=workdir)
    assert again.returncode == 1
    assert "tuned.h5, tuned.h5.json exist; pass --overwrite" in again.stderr


@pytest.mark.parametrize(
    "method, params, teachers, message",
    [
        ("dml", [], 1, "without a teacher: drop --teacher"),
        ("kd", [], 0, "--method kd needs --teacher"),
        ("takd", ["size=2"], 1, "takd has no parameter size"),
        ("born_again", ["generations=0"], 1, "generations"),
    ],
)
def test_bad_schemes(
    workdir, teacher, capsys, method, params, teachers, message
):
    status, err = run_main(
        capsys,
        *distill_args(
            [teacher] * teachers,
            workdir / "tiny.npz",
            "--epochs",
            "1",
            "--method",
            method,
            "--output",
            workdir / "never.h5",
            params=params,
        ),
    )
    assert status == 1 and message in err
    assert not (workdir / "never.h5").exists()


@pytest.mark.parametrize(
    "params, message",
    [
        (["nckd_weight"], "--param takes KEY=VALUE"),
        (["gamma=2"], "dkd has no parameter gamma. Its parameters: weight"),
        (["nckd_weight=-1"], "nckd_weight must be >= 0"),
        (["temperature=2"], "Set the temperature with --temperature"),
    ],
)
def test_bad_method_parameters(workdir, teacher, capsys, params, message):
    status, err = run_main(
        capsys,
        *distill_args(
            teacher,
            workdir / "tiny.npz",
            "--method",
            "dkd",
            "--output",
            workdir / "never.h5",
            params=params,
        ),
    )
    assert status == 1 and message in err
    assert not (workdir / "never.h5").exists()


def test_the_command_line_lists_every_method(capsys):
    """`--method`'s choices and the methods paragraph of `distill --help`
    come from the registry: each method with its summary and defaults."""
    from kd_keras import methods

    with pytest.raises(SystemExit):
        cli.main(["distill", "--method", "hint"])
    err = capsys.readouterr().err
    # Python 3.12.8 and later list the choices unquoted, earlier repr'd.
    assert any(
        f"choose from {', '.join(map(show, methods.REGISTRY))})" in err
        for show in (str, repr)
    )
    with pytest.raises(SystemExit):
        cli.main(["distill", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for name, method in methods.REGISTRY.items():
        assert f" {name} {method.summary}" in out
    assert "[warmup=1]" in out
    assert "[teacher_layer=NAME, student_layer=NAME, weight=100.0]" in out
    assert "[mixup_alpha=1.0, shift=0.1]" in out
    assert "[assistant=mlp|cnn|FILE]" in out


def test_store_build_and_distill_from_it(workdir, teacher, student):
    build = ("store", "build", "--teacher", teacher, "--dataset", "tiny.npz")
    result = kd_keras(*build, "--output", "store", cwd=workdir)
    assert result.returncode == 0, result.stderr
    # 240 training samples, 48 of them carved out for validation.
    assert re.search(
        r"192 samples in 1 shard\(s\); [\d.]+ MiB written", result.stdout
    )
    assert "TeacherStore(" in result.stdout
    again = kd_keras(*build, "--output", "store", cwd=workdir)
    assert again.returncode == 1
    assert "holds a TeacherStore" in again.stderr
    distill = distill_args(
        teacher,
        "tiny.npz",
        *("--teacher-store", "store", "--epochs", "2"),
        *("--output", "from_store.h5"),
    )
    result = kd_keras(*distill, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert kd_keras_load(workdir / "from_store.h5").name == "mlp_student"
    # A store of another teacher is refused in one line.
    distill[distill.index(teacher)] = student
    distill[-1] = "other.h5"
    result = kd_keras(*distill, cwd=workdir)
    assert result.returncode == 1
    assert "built for another teacher" in result.stderr
    assert not (workdir / "other.h5").exists()
    # A store without the layer a feature method reads: the flag to add.
    fitnet = distill_args(
        teacher,
        "tiny.npz",
        *("--teacher-store", "store", "--method", "fitnet"),
        *("--output", "fitnet.h5"),
        params=("teacher_layer=dense_0", "student_layer=dense_0"),
    )
    result = kd_keras(*fitnet, cwd=workdir)
    assert result.returncode == 1
    assert result.stderr.endswith(
        "outputs of no layer; --method fitnet reads 'dense_0': build the "
        "store again with --teacher-layer dense_0.\n"
    )


# --- Mistakes reported at once; output a log can hold ----------------------


def kd_keras_process(*args, cwd):
    """`kd-keras args` in a new process whose output is a pipe, timed."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "kd_keras.app.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
    )
    return result, time.perf_counter() - start


@pytest.mark.parametrize(
    "args, message",
    [
        (
            (
                "distill",
                "--teacher",
                "teacher.h5",
                "--student",
                "mlp",
                "--dataset",
                "tiny.npz",
                "--output",
                "taken.h5",
            ),
            "taken.h5, taken.h5.json exist; pass --overwrite",
        ),
        (
            ("train-teacher", "--dataset", "digitz", "--output", "t.h5"),
            "Unknown dataset 'digitz'",
        ),
        (("evaluate", "nosuch.h5"), "No model file at 'nosuch.h5'."),
        (
            (
                "evaluate",
                "teacher.h5",
                "--dataset",
                "tiny.npz",
                "--teacher",
                "nosuch.h5",
            ),
            "No model file at 'nosuch.h5' (--teacher).",
        ),
        (
            (
                "distill",
                "--teacher",
                "teacher.h5",
                "--student",
                "mlp",
                "--output",
                "no/such/folder/s.h5",
            ),
            "No folder 'no/such/folder' to write s.h5 in",
        ),
        (
            (
                "distill",
                "--student",
                "mlp",
                "--output",
                "s.h5",
                "--epochs",
                "0",
            ),
            "--epochs must be >= 1. Received: --epochs=0",
        ),
        (
            (
                "distill",
                "--student",
                "mlp",
                "--output",
                "s.h5",
                "--alpha",
                "1.5",
            ),
            "--alpha must be in [0, 1]. Received: --alpha=1.5",
        ),
        (
            ("demo", "--temperature", "0"),
            "--temperature must be > 0. Received: --temperature=0.0",
        ),
        (
            (
                "tune",
                "--teacher",
                "t.h5",
                "--student",
                "mlp",
                "--output",
                "o.h5",
                "--trials",
                "0",
            ),
            "--trials must be >= 1",
        ),
        (("demo", "--labels", "0"), "--labels must be >= 1"),
        (
            (
                "distill",
                *("--teacher", "teacher.h5", "--student", "mlp"),
                *("--method", "fitnet", "--output", "s.h5"),
            ),
            "--method fitnet needs --param teacher_layer=NAME --param "
            "student_layer=NAME.",
        ),
        (("store",), "the following arguments are required: COMMAND"),
    ],
)
def test_a_mistake_is_one_line_at_once(workdir, teacher, args, message):
    """Before, TensorFlow loaded first (6-9 s) and argparse printed its
    usage block with exit status 2."""
    (workdir / "taken.h5").write_bytes(b"")
    (workdir / "taken.h5.json").write_text("{}")
    result, seconds = kd_keras_process(*args, cwd=workdir)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert seconds < 1.5, f"{seconds:.1f} s to report {message!r}"


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert (
        capsys.readouterr().out == f"kd-keras {kd_keras_module.__version__}\n"
    )


@pytest.mark.program
def test_piped_output_holds_no_control_characters_or_tensorflow_lines(
    workdir, teacher
):
    """One distill over 90 epochs wrote 112 KB of per-batch bars and ANSI
    codes to a file; export printed "Saved artifact at ..." and its
    endpoints, TFLite's XNNPACK line and the quantizer's settings."""
    result, _ = kd_keras_process(
        *distill_args(teacher, "tiny.npz", "--epochs", "3"),
        "--output",
        "piped.h5",
        "--overwrite",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout + result.stderr
    assert result.stdout.count("Epoch ") == 3
    assert len(result.stdout.splitlines()) < 20
    result, _ = kd_keras_process(
        "export",
        "piped.h5",
        "--dataset",
        "tiny.npz",
        "--quantize",
        "int8",
        "--output",
        "piped.tflite",
        "--overwrite",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith("piped.tflite:")
    assert len(result.stdout.splitlines()) == 1
    quiet, _ = kd_keras_process(
        *distill_args(teacher, "tiny.npz", "--epochs", "2"),
        "--output",
        "piped.h5",
        "--overwrite",
        "--quiet",
        cwd=workdir,
    )
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert "Epoch" not in quiet.stdout and "card:" in quiet.stdout
