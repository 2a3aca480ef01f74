"""A distributed search: KerasTuner's chief oracle and two local workers.

KerasTuner distributes a search by itself: every process runs the same
script, calling `kd_keras.tune` with the same project folder; the one with
`KERASTUNER_TUNER_ID=chief` serves the oracle (which trial next) and
returns the result when the trials are done, the others (`tuner0`,
`tuner1`) run trials, each computing the teacher's outputs once for all of
its trials. Here the three processes run on this machine, on digits.

Run: `.venv/bin/python benchmarks/tune_distributed.py` (about a minute on 2
cores). Prints what each process returned (the chief: the best trial) and
the number of trials.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRIALS = 4


def search(directory):
    """One process of the search; prints its result as JSON."""
    import keras

    import kd_keras

    (x, y), _ = kd_keras.datasets.load("digits")
    keras.utils.set_random_seed(0)
    teacher = kd_keras.models.mlp((64,), 10, (256,), name="teacher")
    teacher.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    teacher.fit(x, y, epochs=5, verbose=0)
    result = kd_keras.tune(
        teacher,
        lambda hp: kd_keras.models.mlp((64,), 10, (32,)),
        x,
        y,
        max_trials=TRIALS,
        epochs=3,
        directory=directory,
        project_name="distributed",
        verbose=0,
    )
    role = os.environ["KERASTUNER_TUNER_ID"]
    if result is None:
        print(json.dumps({"role": role}))
        return
    print(
        json.dumps(
            {
                "role": role,
                "trials": len(result.trials),
                "best": result.hyperparameters,
                "validation_accuracy": result.validation_accuracy,
            }
        )
    )


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    with tempfile.TemporaryDirectory() as directory:
        port = free_port()
        root = Path(__file__).resolve().parents[1]
        processes = {}
        for role in ("chief", "tuner0", "tuner1"):
            env = {
                **os.environ,
                "KERASTUNER_TUNER_ID": role,
                "KERASTUNER_ORACLE_IP": "127.0.0.1",
                "KERASTUNER_ORACLE_PORT": str(port),
                "PYTHONPATH": os.pathsep.join(
                    [str(root), os.environ.get("PYTHONPATH", "")]
                ),
                "TF_CPP_MIN_LOG_LEVEL": "3",
            }
            processes[role] = subprocess.Popen(
                [sys.executable, __file__, "--search", directory],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            if role == "chief":
                time.sleep(2)  # the oracle listens before workers ask
        start = time.perf_counter()
        for role, process in processes.items():
            out, err = process.communicate(timeout=900)
            if process.returncode:
                sys.exit(f"{role} failed:\n{err[-3000:]}")
            print(out.strip().splitlines()[-1])
        trials = sorted(Path(directory, "distributed").glob("trial_*"))
        print(
            f"{len(trials)} trials in {time.perf_counter() - start:.0f} s "
            "(chief and two workers on this machine)"
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--search"]:
        search(sys.argv[2])
    else:
        main()
