"""Your images, your models: notebook 09's job over seeds.

Fashion-MNIST written as 32x32 PNG folders (`train/` labelled, `unlabelled/`,
`val/`, `test/`; `--images` labelled, as many unlabelled and tested, a
quarter as many for validation), read by `kd_keras.images.image_folders`.
The teacher is the CNN of `saved_models/` (trained on all 60,000 images at
28x28, pixels in [0, 1]) behind a crop and a rescaling; the student a
`kd_keras.models.application("MobileNetV3Small")` trained from scratch,
with random flips and shifts in front. Per seed, from the same initial
weights: the scratch twin on the labelled images, and two distilled twins
on the labelled and unlabelled images, Hinton KD and KD + RKD on layers of
the nested models (`cnn_teacher/dense`, `MobileNetV3Small/conv_2`); each
stops early on `val/` (at most `--epochs`, patience `--patience`) and
keeps its best epoch. The distilled twin reported is chosen on `val/`;
`test/` is scored once per seed.

Also measures the BatchNorm trap: the scratch twin of seed 0 with the
Application's own BatchNorm momentum (0.999) against kd_keras' 0.9, its
validation accuracy after each of `--trap-epochs` epochs.

Writes `benchmarks/IMAGES.md`.

Run: `.venv/bin/python benchmarks/images.py` (about 30 minutes on 2 cores).
"""

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kd_keras  # noqa: E402
from kd_keras.app import evaluation  # noqa: E402

TEACHER = (
    Path(__file__).parents[1]
    / "saved_models"
    / ("fashion_mnist_cnn_teacher.h5")
)
CLASSES = [
    f"{i}_{name}"
    for i, name in enumerate(
        [
            "t-shirt",
            "trouser",
            "pullover",
            "dress",
            "coat",
            "sandal",
            "shirt",
            "sneaker",
            "bag",
            "boot",
        ]
    )
]
ROLES = {
    "scratch": "scratch twin (labelled images only)",
    "kd": "distilled, Hinton KD",
    "kd_rkd": "distilled, KD + RKD on nested layers",
    "chosen": "distilled, chosen on validation",
}


def pixels(x):
    """[0, 1] floats back to uint8 pixels, padded to 32x32."""
    grey = np.round(x[..., 0] * 255).astype("uint8")
    return np.pad(grey, ((0, 0), (2, 2), (2, 2)))


def folders(root, arrays, images, seed):
    """Writes the seed's image folders under `root`; returns their data."""
    (x_all, y_all), (x_test, y_test) = arrays
    order = np.random.default_rng(seed).permutation(len(y_all))
    train, unlabelled, val = np.split(
        order[: 2 * images + images // 4], [images, 2 * images]
    )
    save = kd_keras.images.save_images
    save(root / "train", pixels(x_all[train]), y_all[train], CLASSES)
    save(root / "unlabelled", pixels(x_all[unlabelled]))
    save(root / "val", pixels(x_all[val]), y_all[val], CLASSES)
    test = np.random.default_rng(seed).choice(len(y_test), images, False)
    save(root / "test", pixels(x_test[test]), y_test[test], CLASSES)
    return kd_keras.images.image_folders(
        root,
        image_size=(32, 32),
        color_mode="grayscale",
        batch_size=64,
        seed=seed,
        verbose=False,
    )


def teacher_for(input_shape):
    trained = keras.models.load_model(TEACHER, compile=False)
    inputs = keras.Input(input_shape)
    x = keras.layers.Cropping2D(2)(inputs)
    x = keras.layers.Rescaling(1 / 255)(x)
    return keras.Model(inputs, trained(x), name="teacher")


def new_student(input_shape, seed, momentum=0.9):
    keras.utils.set_random_seed(seed)
    return kd_keras.models.application(
        "MobileNetV3Small",
        input_shape,
        num_classes=10,
        augmentation=[
            keras.layers.RandomFlip("horizontal"),
            keras.layers.RandomTranslation(0.1, 0.1),
        ],
        batchnorm_momentum=momentum,
    )


def stopping(patience):
    return keras.callbacks.EarlyStopping(
        "val_accuracy", patience=patience, mode="max", restore_best_weights=True
    )


def scratch_twin(student, data, epochs, callbacks, seed):
    twin = kd_keras.models.copy_model(student, "scratch")
    twin.compile(
        "adam",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    keras.utils.set_random_seed(seed)
    history = twin.fit(
        data.train,
        validation_data=data.validation,
        epochs=epochs,
        callbacks=callbacks,
        verbose=0,
    )
    return twin, history.history


def distilled_twin(name, teacher, student, data, losses, args, seed):
    twin = kd_keras.models.copy_model(student, name)
    distiller = kd_keras.Distiller(
        teacher, twin, distillation_loss=losses, cache=True
    )
    distiller.compile("adam", metrics=["accuracy"])
    keras.utils.set_random_seed(seed)
    history = distiller.fit(
        data.distillation_data(seed=seed),
        validation_data=data.validation,
        epochs=args.epochs,
        callbacks=[stopping(args.patience)],
        verbose=0,
    )
    return twin, history.history


def run_seed(arrays, args, seed):
    """`{role: (validation, test, epochs)}` of a seed, the teacher's too."""
    with tempfile.TemporaryDirectory() as folder:
        data = folders(Path(folder), arrays, args.images, seed)
        teacher = teacher_for(data.input_shape)
        student = new_student(data.input_shape, seed)
        results = {
            "teacher": (
                evaluation.accuracy(teacher, data.validation),
                evaluation.accuracy(teacher, data.test),
                0,
            )
        }
        trained = {}
        trained["scratch"] = scratch_twin(
            student, data, args.epochs, [stopping(args.patience)], seed
        )
        relational = kd_keras.losses.RKD(
            "cnn_teacher/dense", "MobileNetV3Small/conv_2"
        )
        for name, losses in (
            ("kd", None),
            ("kd_rkd", [kd_keras.losses.KD(4.0), relational]),
        ):
            trained[name] = distilled_twin(
                name, teacher, student, data, losses, args, seed
            )
        for name, (model, history) in trained.items():
            results[name] = (
                max(history["val_accuracy"]),
                evaluation.accuracy(model, data.test),
                len(history["loss"]),
            )
        best = max(("kd", "kd_rkd"), key=lambda name: results[name][0])
        results["chosen"] = (*results[best], best)
        print(f"seed {seed}: {results}", flush=True)
        return results


def trap(data, epochs, seed):
    """Validation accuracy per epoch of the scratch twin at the
    Application's BatchNorm momentum and at kd_keras'."""
    curves = {}
    for label, momentum in (("0.999 (Keras')", 0.999), ("0.9", 0.9)):
        student = new_student(data.input_shape, seed, momentum)
        _, history = scratch_twin(student, data, epochs, [], seed)
        curves[label] = history["val_accuracy"]
        print(f"momentum {label}: {curves[label]}", flush=True)
    return curves


def mean_std(values):
    values = [100 * v for v in values]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {spread:.2f}"


def markdown(results, curves, args, seconds):
    seeds = list(results)

    def test(role):
        return [results[seed][role][1] for seed in seeds]

    gains = [
        c - s for c, s in zip(test("chosen"), test("scratch"), strict=True)
    ]
    closed = [
        (c - s) / (t - s)
        for t, s, c in zip(
            test("teacher"), test("scratch"), test("chosen"), strict=True
        )
    ]
    chosen = [results[seed]["chosen"][3] for seed in seeds]
    lines = [
        "# Your images, your models: distilling a MobileNetV3Small from "
        "image folders",
        "",
        "Notebook 09's job over seeds (`benchmarks/images.py`): Fashion-MNIST "
        f"as 32x32 PNG folders, {args.images:,} labelled training images, "
        f"{args.images:,} unlabelled, {args.images // 4:,} for validation, "
        f"{args.images:,} for the test. Teacher: the CNN of `saved_models/` "
        "behind a crop and a rescaling. Student: "
        "`kd_keras.models.application('MobileNetV3Small')` from scratch, "
        "random flips and shifts in front. Every twin starts from the "
        f"seed's initial weights and stops on `val/` (at most {args.epochs} "
        f"epochs, patience {args.patience}); the distilled twin reported is "
        "the one of the two methods with the better validation accuracy; "
        "`test/` is scored once per seed.",
        "",
        f"**Distilled − scratch: {mean_std(gains)} points** (mean ± std of "
        f"the paired differences over seeds {', '.join(map(str, seeds))}); "
        f"gap to the teacher closed: {mean_std(closed)}%. Chosen on "
        f"validation: {', '.join(chosen)}.",
        "",
        "Test accuracy in % (mean ± std over the seeds), and per seed:",
        "",
        "| model | test accuracy | validation accuracy | epochs | "
        + " | ".join(f"seed {s}" for s in seeds)
        + " |",
        "|---|---:|---:|---:|" + "---:|" * len(seeds),
    ]
    for role, name in {"teacher": "teacher", **ROLES}.items():
        values = [results[seed][role] for seed in seeds]
        lines.append(
            f"| {name} | {mean_std(v[1] for v in values)} "
            f"| {mean_std(v[0] for v in values)} "
            f"| {statistics.mean(v[2] for v in values):.0f} | "
            + " | ".join(f"{100 * v[1]:.2f}" for v in values)
            + " |"
        )
    lines += [
        "",
        "## The BatchNorm trap",
        "",
        "The scratch twin of seed 0, trained from scratch with the "
        "Application's BatchNorm momentum and with the 0.9 "
        "`kd_keras.models.application` sets; validation accuracy after "
        "each epoch:",
        "",
        "| momentum | "
        + " | ".join(f"epoch {e + 1}" for e in range(args.trap_epochs))
        + " |",
        "|---|" + "---:|" * args.trap_epochs,
    ]
    for label, curve in curves.items():
        lines.append(
            f"| {label} | " + " | ".join(f"{v:.3f}" for v in curve) + " |"
        )
    command = " ".join(sys.argv[1:])
    lines += [
        "",
        f"Ran in {seconds / 60:.0f} min on {platform.machine()}, "
        f"{os.cpu_count()} CPU cores, TensorFlow {tf.__version__}, Keras "
        f"{keras.__version__}, {time.strftime('%Y-%m-%d')}, with `python "
        f"benchmarks/images.py{' ' + command if command else ''}`.",
    ]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--images", type=int, default=2_000)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--trap-epochs", type=int, default=8)
    args = parser.parse_args()
    start = time.perf_counter()
    arrays = kd_keras.datasets.load("fashion_mnist")
    results = {}
    for seed in range(args.seeds):
        results[seed] = run_seed(arrays, args, seed)
    with tempfile.TemporaryDirectory() as folder:
        data = folders(Path(folder), arrays, args.images, 0)
        curves = trap(data, args.trap_epochs, 0)
    path = Path(__file__).parent / "IMAGES.md"
    path.write_text(
        markdown(results, curves, args, time.perf_counter() - start)
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
