"""One worker of the multi-worker distillation tests (run as a script).

`python distributed_worker.py CONFIG_JSON` distils the tiny teacher and
student of `make_models` on `make_data`, under a
`MultiWorkerMirroredStrategy` when the config names a cluster, and saves
the model's weights to `<out>/student_<index>.npz`. A config with `runs`
(a list of configs, each with its own `out`) distils each of them in turn
under the one strategy, sparing the start of a process per run.

Config keys: `ports` (one per worker, or none for a single process),
`index`, `out`, `epochs`, `batch_size`, `cache` (`Distiller`'s), `data`
(`"numpy"`, `"dataset"`, or the path of a `TeacherStore` of `make_data`),
`validation` (validate on half the data), `order` (indices reordering the
samples), `jit`, `steps_per_execution`, `deterministic` (op determinism,
for every run once one asks), `mutual` (train teacher and student as a
`MutualLearning` cohort), `backup` (a `BackupAndRestore` directory, Keras'
one with `keras_backup`) and `kill_at` (`[index, epoch, batch]`: worker
`index` SIGKILLs itself after that batch).
"""

import json
import os
import signal
import sys

import numpy as np

SAMPLES, FEATURES, CLASSES = 64, 8, 4


def make_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(SAMPLES, FEATURES)).astype("float32")
    y = rng.integers(0, CLASSES, SAMPLES)
    return x, y


def make_models(keras):
    """Teacher and student MLPs with fixed, seed-independent weights."""
    rng = np.random.default_rng(1)
    models = []
    for units, name in ((16, "teacher"), (8, "student")):
        inputs = keras.Input((FEATURES,))
        hidden = keras.layers.Dense(units, activation="relu")(inputs)
        outputs = keras.layers.Dense(CLASSES)(hidden)
        model = keras.Model(inputs, outputs, name=name)
        model.set_weights(
            [
                rng.normal(scale=0.5, size=w.shape).astype("float32")
                for w in model.get_weights()
            ]
        )
        models.append(model)
    return models


def distil(config, keras, kd_keras):
    """Builds, compiles and fits the distiller; returns it and History."""
    x, y = make_data()
    if config.get("order"):
        x, y = x[config["order"]], y[config["order"]]
    teacher, student = make_models(keras)
    if config.get("mutual"):
        distiller = kd_keras.MutualLearning([teacher, student], 2.0)
    else:
        distiller = kd_keras.Distiller(
            teacher,
            student,
            temperature=2.0,
            cache=config.get("cache", "auto"),
        )
    distiller.compile(
        keras.optimizers.SGD(0.5),
        metrics=["accuracy"],
        jit_compile=config.get("jit", False),
        steps_per_execution=config.get("steps_per_execution", 1),
    )
    callbacks = []
    if config.get("backup"):
        backup = (
            keras.callbacks.BackupAndRestore
            if config.get("keras_backup")
            else kd_keras.distribute.BackupAndRestore
        )
        callbacks.append(backup(config["backup"]))
    if config.get("kill_at") and config["kill_at"][0] == config["index"]:
        callbacks.append(_KillAt(keras, *config["kill_at"][1:]))
    if config.get("data") not in (None, "numpy", "dataset"):
        data = {
            "x": kd_keras.TeacherStore(config["data"]),
            "batch_size": config["batch_size"],
        }
    elif config.get("data") == "dataset":
        import tensorflow as tf

        inputs = tf.data.Dataset.from_tensor_slices((x, y))
        data = {"x": inputs.batch(config["batch_size"])}
    else:
        data = {"x": x, "y": y, "batch_size": config["batch_size"]}
    if config.get("validation"):
        data["validation_data"] = (x[: SAMPLES // 2], y[: SAMPLES // 2])
    history = distiller.fit(
        **data,
        epochs=config["epochs"],
        shuffle=False,
        callbacks=callbacks,
        verbose=0,
    )
    return distiller, history


def _KillAt(keras, epoch, batch):
    class KillAt(keras.callbacks.Callback):
        def on_epoch_begin(self, current, logs=None):
            self.epoch = current

        def on_train_batch_end(self, current, logs=None):
            if (self.epoch, current) == (epoch, batch):
                os.kill(os.getpid(), signal.SIGKILL)

    return KillAt()


def main(config):
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if config.get("ports"):
        os.environ["TF_CONFIG"] = json.dumps(
            {
                "cluster": {
                    "worker": [f"127.0.0.1:{p}" for p in config["ports"]]
                },
                "task": {"type": "worker", "index": config["index"]},
            }
        )
    import keras
    import tensorflow as tf

    import kd_keras

    runs = [{**config, **run} for run in config.get("runs", [config])]
    if any(run.get("deterministic") for run in runs):
        tf.config.experimental.enable_op_determinism()
    if config.get("ports"):
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    for run in runs:
        keras.utils.set_random_seed(0)
        with strategy.scope():
            distiller, history = distil(run, keras, kd_keras)
        save(run, distiller, history)


def save(config, distiller, history):
    np.savez(
        os.path.join(config["out"], f"student_{config['index']}.npz"),
        *distiller.get_weights(),
    )
    with open(
        os.path.join(config["out"], f"history_{config['index']}.json"), "w"
    ) as f:
        json.dump(history.history, f)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
