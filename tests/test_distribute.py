"""Multi-worker distillation with `MultiWorkerMirroredStrategy`.

The multi-worker tests start two worker processes (`distributed_worker.py`)
on 127.0.0.1 with `TF_CONFIG`; each process has one CPU replica, so a global
batch of 16 is two per-worker batches of 8. One pair of processes makes
the runs of `RUNS` in turn; the killed-worker test starts its own. A hang
fails the test after `TIMEOUT` seconds instead of blocking the suite.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import distributed_worker
import keras
import numpy as np
import pytest
import tensorflow as tf

import kd_keras
from kd_keras import distribute

# Whole programs: left out of make test-fast.
pytestmark = pytest.mark.program

WORKER = pathlib.Path(distributed_worker.__file__)
ROOT = pathlib.Path(kd_keras.__file__).parents[1]
TIMEOUT = 300
WORKERS = 2
CONFIG = {
    "epochs": 4,
    "batch_size": 16,
    "deterministic": True,
    "validation": True,
}


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(out, **config):
    out.mkdir(exist_ok=True)
    ports = free_ports(WORKERS)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TF_CONFIG", None)
    processes = []
    for index in range(WORKERS):
        config = {**config, "out": str(out), "ports": ports, "index": index}
        with open(out / f"worker_{index}.log", "w") as log:
            processes.append(
                subprocess.Popen(
                    [sys.executable, str(WORKER), json.dumps(config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
    return processes


def logs(out):
    return "\n".join(
        f"--- worker {i}:\n" + (out / f"worker_{i}.log").read_text()[-3000:]
        for i in range(WORKERS)
    )


def wait(processes, out, timeout=TIMEOUT):
    """Return codes of the processes; kills them all after `timeout`."""
    deadline = time.monotonic() + timeout
    try:
        for process in processes:
            process.wait(max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:
        for process in processes:
            process.kill()
            process.wait()
        pytest.fail(f"workers timed out after {timeout} s\n{logs(out)}")
    return [process.returncode for process in processes]


def results(out):
    """`(student weights, history)` saved by each worker."""
    return [
        (
            list(np.load(out / f"student_{i}.npz").values()),
            json.loads((out / f"history_{i}.json").read_text()),
        )
        for i in range(WORKERS)
    ]


def run_workers(out, **config):
    codes = wait(start_workers(out, **config), out)
    assert codes == [0] * WORKERS, logs(out)
    return results(out)


def single_process(**config):
    """The same distillation in this process, without a strategy."""
    keras.utils.set_random_seed(0)
    distiller, history = distributed_worker.distil(config, keras, kd_keras)
    return distiller.get_weights(), history.history


def assert_same_run(result, expected, tolerance):
    (weights, history), (expected_weights, expected_history) = (
        result,
        expected,
    )
    for w, e in zip(weights, expected_weights, strict=True):
        np.testing.assert_allclose(w, e, rtol=0, atol=tolerance)
    assert history.keys() == expected_history.keys()
    for key in history:
        np.testing.assert_allclose(
            history[key], expected_history[key], rtol=tolerance
        )


def build_store(path):
    """A store of `make_data` in two shards of 32 samples."""
    teacher, _ = distributed_worker.make_models(keras)
    return kd_keras.TeacherStore.build(
        teacher,
        distributed_worker.make_data(),
        path,
        dtype="float32",
        batch_size=8,
        samples_per_shard=32,
        verbose=0,
    )


# The runs two workers make one after the other, each compared with the
# same distillation in one process. `data` of "store" is set to the store's
# path when it is built.
RUNS = {
    "uninterrupted": CONFIG,
    "dataset": {
        "epochs": 2,
        "batch_size": 16,
        "data": "dataset",
        "cache": True,
        "validation": True,
        "steps_per_execution": 3,
    },
    "store": {"epochs": 2, "batch_size": 16, "data": None},
    "mutual": {**CONFIG, "epochs": 2, "mutual": True},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """`{name: both workers' results}` for each of `RUNS`, all made by one
    pair of worker processes (starting a pair costs more than a run)."""
    out = tmp_path_factory.mktemp("runs")
    configs = {
        name: {**config, "out": str(out / name)}
        for name, config in RUNS.items()
    }
    configs["store"]["data"] = str(build_store(out / "store_files").path)
    for config in configs.values():
        pathlib.Path(config["out"]).mkdir()
    codes = wait(
        start_workers(out, runs=list(configs.values())), out, 2 * TIMEOUT
    )
    assert codes == [0] * WORKERS, logs(out)
    return {name: results(out / name) for name in configs}


def test_workers_end_with_the_single_process_student(runs):
    # Numpy inputs and validation data, the teacher's outputs cached
    # ("auto"), no shuffling:
    # each global batch of 16 is split 8/8, and the gradients summed over
    # the workers are those of the loss averaged over the 16 samples.
    (w0, h0), (w1, h1) = runs["uninterrupted"]
    for a, b in zip(w0, w1, strict=True):
        np.testing.assert_array_equal(a, b)
    assert h0 == h1
    assert len(h0["loss"]) == CONFIG["epochs"]
    assert_same_run((w0, h0), single_process(**CONFIG), 1e-5)


def test_dataset_with_cached_teacher(runs):
    # A batched tf.data pipeline is sharded by data, and its cached teacher
    # outputs travel with each sample. Executions of 3 steps over 4
    # batches: the second one ends early without interrupting training.
    (w0, h0), (w1, h1) = runs["dataset"]
    for a, b in zip(w0, w1, strict=True):
        np.testing.assert_array_equal(a, b)
    assert_same_run((w0, h0), single_process(**RUNS["dataset"]), 1e-5)


def test_store_shards_are_read_one_per_worker(runs):
    # A store of two shards of 32 samples: each worker reads its own shard
    # (tf.data's auto-sharding by file), 8 samples per step. One process
    # given the samples in that order, 8 of each shard per global batch of
    # 16, trains the same student (in the store's order it does not).
    (w0, h0), (w1, h1) = runs["store"]
    for a, b in zip(w0, w1, strict=True):
        np.testing.assert_array_equal(a, b)
    order = np.arange(64).reshape(2, 4, 8).transpose(1, 0, 2).ravel()
    expected = single_process(
        **{**RUNS["store"], "data": "numpy", "cache": True},
        order=order.tolist(),
    )
    assert_same_run((w0, h0), expected, 1e-5)


def test_mutual_learning_on_two_workers(runs):
    (w0, h0), (w1, h1) = runs["mutual"]
    for a, b in zip(w0, w1, strict=True):
        np.testing.assert_array_equal(a, b)
    assert h0 == h1
    assert_same_run((w0, h0), single_process(**RUNS["mutual"]), 1e-5)


def test_killed_worker_resumes_from_backup(tmp_path, runs):
    backup = tmp_path / "backup"
    config = {**CONFIG, "backup": str(backup)}
    # The chief SIGKILLs itself after batch 1 of epoch 2 (0-based).
    processes = start_workers(tmp_path / "killed", **config, kill_at=[0, 2, 1])
    assert processes[0].wait(TIMEOUT) == -9, logs(tmp_path / "killed")
    # The survivor cannot finish without the chief: it fails, or is
    # stopped when the job restarts.
    try:
        processes[1].wait(60)
    except subprocess.TimeoutExpired:
        processes[1].kill()
        processes[1].wait()
    assert processes[1].returncode != 0
    index = json.loads((backup / "backup.json").read_text())
    assert index["epoch"] == 2
    resumed = run_workers(tmp_path / "resumed", **config)
    for (weights, history), (expected, expected_history) in zip(
        resumed, [runs["uninterrupted"][0]] * WORKERS, strict=True
    ):
        for w, e in zip(weights, expected, strict=True):
            np.testing.assert_array_equal(w, e)
        # Only epochs 2 and 3 ran after the restart.
        assert history == {k: v[2:] for k, v in expected_history.items()}
    assert not backup.exists()


def test_single_worker_strategies_use_keras_steps(mirrored):
    assert not distribute.is_multi_worker(tf.distribute.get_strategy())
    assert not distribute.is_multi_worker(mirrored)


def test_backup_dir_must_be_given():
    with pytest.raises(ValueError, match="backup_dir"):
        distribute.BackupAndRestore("")


def test_unseeded_shuffle_is_refused_on_several_workers(monkeypatch, tmp_path):
    monkeypatch.setattr(distribute, "is_multi_worker", lambda strategy: True)
    strategy = tf.distribute.get_strategy()
    x = np.zeros((4, 2), "float32")
    tf.random.set_seed(None)
    with pytest.raises(ValueError, match="shuffle=True"):
        distribute.check_shuffle(strategy, x, True)
    distribute.check_shuffle(strategy, x, False)
    distribute.check_shuffle(
        strategy, tf.data.Dataset.from_tensor_slices(x), True
    )
    store = kd_keras.TeacherStore.build(
        keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)]),
        x,
        tmp_path / "store",
        verbose=0,
    )
    tf.random.set_seed(None)
    with pytest.raises(ValueError, match="shuffle=True"):
        distribute.check_shuffle(strategy, store, True)
    keras.utils.set_random_seed(1)
    distribute.check_shuffle(strategy, x, True)
    distribute.check_shuffle(strategy, store, True)
