"""Fault tolerance and determinism: killed runs resume, saves are atomic.

`tf.config.experimental.enable_op_determinism` is process-wide, so the
training runs happen in fresh subprocesses (`RUN` below), two at a time
where they are independent.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import make_data, make_mlp

import kd_keras
from kd_keras import export, files
from kd_keras.app import cards

ROOT = Path(__file__).resolve().parents[1]

# One distillation run: 48 samples, batches of 8, 4 epochs, with dropout,
# FitNet's adapter, temperature and alpha schedules and shuffling. With
# "kill_at": [epoch, batch] it writes "marker" after that batch and waits
# to be killed.
RUN = textwrap.dedent("""
    import json, sys, time
    import keras, numpy as np, tensorflow as tf
    import kd_keras
    opts = json.loads(sys.argv[1])
    keras.utils.set_random_seed(opts["seed"])
    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 8)).astype("float32")
    y = rng.integers(0, 4, 48)

    def mlp(units, name, dropout):
        inputs = keras.Input((8,))
        h = keras.layers.Dense(units, activation="relu")(inputs)
        h = keras.layers.Dropout(dropout)(h)
        return keras.Model(inputs, keras.layers.Dense(4)(h), name=name)

    teacher, student = mlp(16, "teacher", 0.0), mlp(8, "student", 0.3)
    losses = [
        kd_keras.losses.KD(4.0),
        kd_keras.losses.FitNet(teacher.layers[1].name, student.layers[1].name),
    ]
    distiller = kd_keras.Distiller(
        teacher, student, losses, cache=opts["cache"]
    )
    distiller.compile(keras.optimizers.Adam(0.01))
    np.savez(opts["out"] + ".initial.npz", *student.get_weights())

    class Kill(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if [self.epoch, batch] == opts.get("kill_at"):
                open(opts["marker"], "w").close()
                time.sleep(600)

    callbacks = [
        kd_keras.callbacks.TemperatureSchedule(
            kd_keras.callbacks.linear(8.0, 1.0, epochs=4)
        ),
        kd_keras.callbacks.AlphaSchedule(
            kd_keras.callbacks.linear(0.5, 0.1, epochs=4)
        ),
        Kill(),
    ]
    if opts.get("backup"):
        callbacks.insert(0, keras.callbacks.BackupAndRestore(opts["backup"]))
    history = distiller.fit(
        x, y, epochs=4, batch_size=8, callbacks=callbacks, verbose=0
    )
    np.savez(opts["out"], *student.get_weights())
    print(len(history.history["loss"]))
""")


def _start(tmp_path, **opts):
    script = tmp_path / "run.py"
    script.write_text(RUN)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    return subprocess.Popen(
        [sys.executable, str(script), json.dumps({"seed": 1, **opts})],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _finish(process):
    """The number of epochs the run trained."""
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-2000:]
    return int(out.split()[-1])


def _weights(path):
    with np.load(path) as f:
        return [f[f"arr_{i}"] for i in range(len(f.files))]


def _assert_identical(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.program
@pytest.mark.parametrize("cache", ["auto", False])
def test_killed_run_resumes_to_the_same_student(tmp_path, cache):
    whole = _start(tmp_path, cache=cache, out=str(tmp_path / "whole.npz"))
    opts = dict(
        cache=cache,
        out=str(tmp_path / "resumed.npz"),
        backup=str(tmp_path / "backup"),
        marker=str(tmp_path / "marker"),
    )
    killed = _start(tmp_path, kill_at=[2, 2], **opts)
    deadline = time.monotonic() + 600
    while not os.path.exists(opts["marker"]):
        assert killed.poll() is None, killed.communicate()[1][-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    metadata = json.loads(
        (tmp_path / "backup/training_metadata.json").read_text()
    )
    assert metadata["epoch"] == 2
    # Restarted, the run trains the two epochs left from its backup.
    assert _finish(_start(tmp_path, **opts)) == 2
    assert _finish(whole) == 4
    assert not (tmp_path / "backup").exists()
    _assert_identical(
        _weights(tmp_path / "resumed.npz"), _weights(tmp_path / "whole.npz")
    )


@pytest.mark.program
def test_two_runs_give_bit_identical_students(tmp_path):
    outs = [tmp_path / "a.npz", tmp_path / "b.npz"]
    runs = [_start(tmp_path, cache="auto", out=str(out)) for out in outs]
    assert [_finish(run) for run in runs] == [4, 4]
    first, second = (_weights(out) for out in outs)
    _assert_identical(first, second)
    initial = _weights(f"{outs[0]}.initial.npz")
    assert all(
        not np.array_equal(w, w0) for w, w0 in zip(first, initial, strict=True)
    )


def _dropout_distiller():
    teacher = make_mlp(16, "teacher")
    inputs = keras.Input((8,))
    h = keras.layers.Dropout(0.5)(keras.layers.Dense(8)(inputs))
    student = keras.Model(inputs, keras.layers.Dense(4)(h))
    distiller = kd_keras.Distiller(teacher, student)
    distiller.compile("adam")
    return distiller


def test_dropout_seed_state_is_saved_with_the_weights(tmp_path):
    x, y = make_data()
    distiller = _dropout_distiller()
    distiller.fit(x, y, epochs=1, batch_size=32, verbose=0)
    (state,) = distiller._seed_states()
    trained = np.array(state.numpy())
    distiller.save_weights(tmp_path / "d.weights.h5")
    fresh = _dropout_distiller()
    (fresh_state,) = fresh._seed_states()
    # Three steps advanced the state from its start.
    assert not np.array_equal(fresh_state.numpy(), trained)
    fresh.load_weights(tmp_path / "d.weights.h5")
    np.testing.assert_array_equal(fresh_state.numpy(), trained)


@pytest.fixture
def trained(teacher, student, data):
    x, y = data
    distiller = kd_keras.Distiller(teacher, student)
    distiller.compile("adam")
    distiller.fit(x, y, epochs=1, verbose=0)
    return distiller


WRITES = {
    "save_student": lambda d, path: d.save_student(path, overwrite=True),
    "Distiller.save": lambda d, path: d.save(path),
    "Distiller.save_weights": lambda d, path: d.save_weights(path),
    "card": lambda d, path: cards.write_json(path, {"a": 1}, overwrite=True),
    "export": lambda d, path: export.write_bytes(path, b"x" * 64, True),
}


@pytest.mark.parametrize(
    "write, name, patched",
    [
        ("save_student", "student.h5", "save"),
        ("save_student", "student.keras", "save"),
        ("Distiller.save", "distiller.keras", "save"),
        ("Distiller.save_weights", "distiller.weights.h5", "save_weights"),
        ("card", "student.json", "write_text"),
        ("export", "student.tflite", "write_bytes"),
    ],
)
def test_crash_mid_write_keeps_the_previous_file(
    trained, tmp_path, monkeypatch, write, name, patched
):
    path = tmp_path / name
    WRITES[write](trained, path)
    before = path.read_bytes()
    owner = Path if patched.startswith("write_") else keras.Model

    def crash(obj, *args, **kwargs):
        target = obj if isinstance(obj, Path) else args[0]
        with open(target, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(owner, patched, crash)
    with pytest.raises(OSError, match="disk full"):
        WRITES[write](trained, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_atomic_path_keeps_compound_extensions(tmp_path):
    with files.atomic_path(tmp_path / "s.weights.h5") as tmp:
        assert tmp.endswith(".s.weights.h5")
        assert Path(tmp).name.startswith(".")


def test_saves_reuse_keras_skip_sets(trained, tmp_path):
    from keras.src.saving.saving_lib import get_attr_skipset

    # Without the cache each save built a reference optimizer, whose
    # memory was never freed.
    trained.save_weights(tmp_path / "d.weights.h5")
    assert get_attr_skipset("Optimizer") is get_attr_skipset("Optimizer")
    assert "variables" not in get_attr_skipset("Optimizer")
