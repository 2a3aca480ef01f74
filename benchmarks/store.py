"""The teacher-output store: its speed, its size, and data larger than memory.

On the MLP pair of `speed.py` (teacher 2x1200, student 1x128) and
Fashion-MNIST's 60,000 training images, batch size 128:

- (a) an epoch of `Distiller.fit(store)` ÷ an epoch of the student trained
  alone on the same pipeline (the store's records, the teacher's outputs
  dropped), first epoch of each fit left out;
- (b) `TeacherStore.build` (batch 256, float16, top 5) ÷ one teacher pass
  over the same data (a compiled forward pass, batch 256);
- (c) the bytes per sample of the stored outputs: float16 top-5 against
  float32 logits, for these 10 classes and for a 1000-class teacher;
- rounds alternate the modes, since the machine is shared and noisy.

Larger than memory: a data set of `--copies` shifted copies of
Fashion-MNIST's training images (float32, `.npy` files read through
`tf.data` by a generator of files) is written to disk; a fresh process in a
memory cgroup limited to `--limit-mib` builds a store of it and trains the
student one epoch from the store. Its peak memory (the cgroup's high-water
mark, page cache included, and the process's resident high-water mark) is
given next to the data's size.

Writes its section of `benchmarks/SPEED.md`.

Run: `.venv/bin/python benchmarks/store.py` (about 15 minutes on 2 cores;
the larger-than-memory part needs root for the cgroup and 9 GB of disk).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from speed import (  # noqa: E402
    ALPHA,
    BATCH_SIZE,
    TEMPERATURE,
    EpochTimer,
    crossentropy,
    load_data,
    machine,
    mlp_pair,
)

import kd_keras  # noqa: E402
from kd_keras.teacher_outputs import cache  # noqa: E402

TITLE = "Teacher-output store (MLP pair)"
BUILD_BATCH, TOP_K = 256, 5
CGROUP = Path("/sys/fs/cgroup/memory/kd_keras_store_benchmark")


def student_pipeline(store):
    """The store's samples without the teacher's outputs."""
    return store.dataset(BATCH_SIZE).map(
        lambda x, y: (x[cache.INPUTS], y), tf.data.AUTOTUNE
    )


def epoch_times(mode, store, epochs):
    keras.utils.set_random_seed(0)
    teacher, student = mlp_pair((28, 28, 1), 10)
    timer = EpochTimer()
    if mode == "student":
        student.compile("adam", crossentropy())
        student.fit(
            student_pipeline(store), epochs=epochs, callbacks=[timer], verbose=0
        )
    else:
        distiller = kd_keras.Distiller(
            teacher, student, alpha=ALPHA, temperature=TEMPERATURE
        )
        distiller.compile("adam")
        distiller.fit(
            store,
            epochs=epochs,
            batch_size=BATCH_SIZE,
            callbacks=[timer],
            verbose=0,
        )
    return timer.seconds[1:]


def teacher_pass_seconds(teacher, x):
    """`(cold, warm)` seconds of a compiled teacher pass over `x`: the first
    includes tracing, as a build's pass does, the second does not."""
    forward = tf.function(lambda batch: teacher(batch, training=False))
    times = []
    for _ in range(2):
        start = time.perf_counter()
        for first in range(0, len(x), BUILD_BATCH):
            forward(x[first : first + BUILD_BATCH]).numpy()
        times.append(time.perf_counter() - start)
    return times


def build_seconds(teacher, data, path):
    shutil.rmtree(path, ignore_errors=True)
    start = time.perf_counter()
    store = kd_keras.TeacherStore.build(
        teacher,
        data,
        path,
        top_k=TOP_K,
        batch_size=BUILD_BATCH,
        verbose=0,
    )
    return time.perf_counter() - start, store


def bytes_per_sample(classes):
    """Stored output bytes per sample of a `classes`-class teacher:
    `(float16 top-5, float32 all logits)`, read from built stores."""
    keras.utils.set_random_seed(0)
    teacher = keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(classes)]
    )
    x = np.random.default_rng(0).normal(size=(256, 16)).astype("float32")
    sizes = []
    with tempfile.TemporaryDirectory() as folder:
        for index, options in enumerate(
            ({"top_k": TOP_K}, {"dtype": "float32"})
        ):
            store = kd_keras.TeacherStore.build(
                teacher, x, Path(folder) / str(index), verbose=0, **options
            )
            sizes.append(store.output_nbytes)
    return tuple(sizes)


def measure_speed(rounds, epochs):
    x, y, source = load_data(60_000)
    folder = Path(tempfile.mkdtemp(prefix="kd_keras_store_"))
    keras.utils.set_random_seed(0)
    teacher, _ = mlp_pair(x.shape[1:], 10)
    results = {
        "student": [],
        "store": [],
        "build": [],
        "teacher": [],
        "teacher_warm": [],
    }
    try:
        store = None
        for round_ in range(rounds):
            print(f"round {round_ + 1}/{rounds}", flush=True)
            cold, warm = teacher_pass_seconds(teacher, x)
            results["teacher"].append(cold)
            results["teacher_warm"].append(warm)
            seconds, store = build_seconds(teacher, (x, y), folder / "store")
            results["build"].append(seconds)
            for mode in ("student", "store"):
                results[mode] += epoch_times(mode, store, epochs)
        store_bytes = store.nbytes
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "source": source,
        "samples": len(x),
        "times": results,
        "store_mib": store_bytes / 2**20,
        "bytes": {c: bytes_per_sample(c) for c in (10, 1000)},
    }


# --- larger than memory ---------------------------------------------------


def write_copies(folder, copies):
    """`copies` shifted copies of Fashion-MNIST's training set as .npy
    files (float32 images, int64 labels); returns their total bytes."""
    x, y, _ = load_data(60_000)
    total = 0
    for copy in range(copies):
        shifted = np.roll(x, (copy % 5 - 2, copy // 5 - 2), axis=(1, 2))
        np.save(folder / f"x_{copy:03d}.npy", shifted)
        np.save(folder / f"y_{copy:03d}.npy", y)
        total += shifted.nbytes + y.nbytes
    return total


def file_pipeline(folder):
    """A batched `tf.data` pipeline reading the .npy files in turn."""
    files = sorted(folder.glob("x_*.npy"))

    def batches():
        for file in files:
            x = np.load(file, mmap_mode="r")
            y = np.load(file.with_name(file.name.replace("x_", "y_")))
            for start in range(0, len(x), 1024):
                yield np.array(x[start : start + 1024]), y[start : start + 1024]

    return tf.data.Dataset.from_generator(
        batches,
        output_signature=(
            tf.TensorSpec((None, 28, 28, 1), tf.float32),
            tf.TensorSpec((None,), tf.int64),
        ),
    )


def large_run(folder):
    """In the limited process: build the store, train one epoch from it."""
    folder = Path(folder)
    keras.utils.set_random_seed(0)
    teacher, student = mlp_pair((28, 28, 1), 10)
    start = time.perf_counter()
    store = kd_keras.TeacherStore.build(
        teacher,
        file_pipeline(folder / "data"),
        folder / "store",
        top_k=TOP_K,
        batch_size=BUILD_BATCH,
        verbose=0,
    )
    built = time.perf_counter() - start
    distiller = kd_keras.Distiller(teacher, student)
    distiller.compile("adam", metrics=["accuracy"])
    start = time.perf_counter()
    history = distiller.fit(store, epochs=1, batch_size=BATCH_SIZE, verbose=0)
    trained = time.perf_counter() - start
    status = Path("/proc/self/status").read_text().splitlines()
    hwm = next(line for line in status if line.startswith("VmHWM:"))
    print(
        json.dumps(
            {
                "samples": store.samples,
                "store_bytes": store.nbytes,
                "build_s": built,
                "epoch_s": trained,
                "accuracy": history.history["accuracy"][-1],
                "vm_hwm_mib": int(hwm.split()[1]) / 1024,
            }
        )
    )


def memory_cgroup(limit_mib):
    """A fresh memory cgroup limited to `limit_mib`, swap included."""
    CGROUP.mkdir(exist_ok=True)
    for name in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"):
        if (CGROUP / name).exists():
            (CGROUP / name).write_text(str(limit_mib * 2**20))
    (CGROUP / "memory.max_usage_in_bytes").write_text("0")


def join_cgroup():
    """Run in the child between fork and exec: it starts in the cgroup."""
    (CGROUP / "cgroup.procs").write_text(str(os.getpid()))


def measure_large(copies, limit_mib):
    folder = Path(tempfile.mkdtemp(prefix="kd_keras_large_"))
    try:
        (folder / "data").mkdir()
        data_bytes = write_copies(folder / "data", copies)
        memory_cgroup(limit_mib)
        output = subprocess.run(
            [sys.executable, __file__, "--large-run", str(folder)],
            check=True,
            capture_output=True,
            text=True,
            preexec_fn=join_cgroup,
        ).stdout
        result = json.loads(output.strip().splitlines()[-1])
        result["cgroup_peak_mib"] = (
            int((CGROUP / "memory.max_usage_in_bytes").read_text()) / 2**20
        )
        result.update(data_bytes=data_bytes, limit_mib=limit_mib)
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- report ----------------------------------------------------------------


def ratio(numerators, denominators):
    return statistics.median(numerators) / statistics.median(denominators)


def section(speed, large):
    times = speed["times"]
    epoch = ratio(times["store"], times["student"])
    build = ratio(times["build"], times["teacher"])
    build_warm = ratio(times["build"], times["teacher_warm"])
    best_epoch = min(times["store"]) / min(times["student"])
    best_build = min(times["build"]) / min(times["teacher"])
    lines = [
        f"## {TITLE}: {speed['samples']} samples of {speed['source']}",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} by `benchmarks/store.py`, "
        f"{len(times['build'])} rounds, on {machine()}. Teacher 2x1200, "
        f"student 1x128, batch size {BATCH_SIZE}; stores of float16 top-"
        f"{TOP_K} logits built in batches of {BUILD_BATCH}.",
        "",
        "| ratio | median | best of repeats | target |",
        "|---|---|---|---|",
        f"| (a) epoch of `fit(store)` ÷ student-alone epoch on the same "
        f"pipeline | {epoch:.2f} | {best_epoch:.2f} | ≤ 1.05: "
        f"{'met' if epoch <= 1.05 else 'NOT met'} |",
        f"| (b) `TeacherStore.build` ÷ one teacher pass, tracing included "
        f"in both | {build:.2f} | {best_build:.2f} | ≤ 1.2: "
        f"{'met' if build <= 1.2 else 'NOT met'} |",
        f"| `TeacherStore.build` ÷ one warm teacher pass (traced before) | "
        f"{build_warm:.2f} | "
        f"{min(times['build']) / min(times['teacher_warm']):.2f} | — |",
        "",
        "| seconds | median | min–max |",
        "|---|---|---|",
    ]
    names = {
        "student": "student-alone epoch (store's records)",
        "store": "epoch of fit(store)",
        "teacher": "one teacher pass (tracing included)",
        "teacher_warm": "one warm teacher pass",
        "build": "TeacherStore.build",
    }
    for key, name in names.items():
        lines.append(
            f"| {name} | {statistics.median(times[key]):.2f} | "
            f"{min(times[key]):.2f}–{max(times[key]):.2f} |"
        )
    lines += [
        "",
        f"The store holds the samples with their outputs: "
        f"{speed['store_mib']:.0f} MiB for {speed['samples']} images.",
        "",
        "(c) Stored teacher outputs per sample:",
        "",
        f"| classes | float16 top-{TOP_K} | float32 logits | ratio |",
        "|---|---|---|---|",
    ]
    for classes, (top_k, full) in speed["bytes"].items():
        lines.append(
            f"| {classes} | {top_k} B | {full} B | {top_k / full:.3f} |"
        )
    if large:
        times_less = large["data_bytes"] / 2**20 / large["limit_mib"]
        lines += [
            "",
            "Larger than memory: "
            f"{large['samples']:,} images ({large['data_bytes'] / 2**30:.2f} "
            "GiB of float32 `.npy` files, read by a generator of files) "
            f"in a process whose memory cgroup is limited to "
            f"{large['limit_mib']} MiB, {times_less:.1f} times less than "
            "the data, page cache included.",
            "",
            "| measure | value |",
            "|---|---|",
            f"| store written | {large['store_bytes'] / 2**30:.2f} GiB |",
            f"| build | {large['build_s']:.0f} s |",
            f"| one epoch of `fit(store)` | {large['epoch_s']:.0f} s |",
            f"| peak memory of the cgroup (page cache included) | "
            f"{large['cgroup_peak_mib']:.0f} MiB |",
            f"| peak resident memory of the process (VmHWM) | "
            f"{large['vm_hwm_mib']:.0f} MiB |",
        ]
    return "\n".join(lines) + "\n"


def write_section(path, text, title=TITLE):
    """Replaces (or appends) the section `title` of `path`."""
    chunks = path.read_text().split("\n## ")
    kept = [c for c in chunks[1:] if not c.startswith(title)]
    body = "\n## ".join([chunks[0].rstrip("\n") + "\n", *kept])
    path.write_text(body.rstrip("\n") + "\n\n" + text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--limit-mib", type=int, default=1024)
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "SPEED.md"
    )
    parser.add_argument("--large-run", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.large_run:
        return large_run(args.large_run)
    large = None
    if args.copies:
        large = measure_large(args.copies, args.limit_mib)
        print(json.dumps(large), flush=True)
    speed = measure_speed(args.rounds, args.epochs)
    write_section(args.output, section(speed, large))
    print(f"wrote {args.output}")
    return None


if __name__ == "__main__":
    sys.exit(main())
