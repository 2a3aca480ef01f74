"""The main job: a student that distillation makes better than its twin.

The scenario is the one teams meet when they compress a model they trust:
a trained teacher, plenty of inputs, few of them labelled. Three twins of
one student start from the same weights and train under the same rule:

- scratch: the labelled samples alone, all it can use without a teacher;
- pseudo-labels: every input, labelled with the teacher's top class (the
  true label where known): what the teacher's hard predictions give;
- distilled: every input through the `Distiller`: the teacher's softened
  outputs, and the label where known (the others are marked
  `kd_keras.labels.UNLABELLED`).

They train under the application's protocol (`kd_keras.app.protocol`):
a validation split carved from the training data, early stopping on it,
the test set scored once, at the end. Each model is saved as `.h5` with a
JSON card; the run's numbers, plots and its verdict go to a report folder.
"""

import math
import time
from pathlib import Path

import numpy as np

from kd_keras import datasets
from kd_keras.app import cards, evaluation, protocol, report
from kd_keras.files import check_free
from kd_keras.saving import save_model
from kd_keras.validation import check_fits

ROLES = report.ROLES


def default_labels(y):
    """Labelled samples of the demo: 1% of `y`, at least 5 per class."""
    return max(5 * datasets.num_classes(y), math.ceil(0.01 * len(y)))


def train_students(teacher, data, settings, seed=0, verbose=0, log=None):
    """Trains the scratch, pseudo-label and distilled twins.

    The pseudo-label twin is left out when every sample is labelled.

    Args:
        teacher: The trained teacher.
        data: `((x, y), (x_val, y_val), labelled)`, as `split` returns it.
        settings: `architecture`, `epochs`, `patience`, `batch_size`,
            `alpha`, `temperature`.
        seed: Seed of the initial weights and the data order.
        verbose: Keras' `verbose` for the training.
        log: Called with one line when each twin is trained (e.g.
            `print`). Defaults to `None`.

    Returns:
        `(students, histories)`: dicts by role.
    """
    train, _, labelled = data
    initial = protocol.new_student(
        (train, None), settings["architecture"], seed
    )
    roles = [role for role in ROLES if role != "teacher"]
    if len(labelled) == len(train[1]):
        roles.remove("student_pseudo")
    students, histories = {}, {}
    for role in roles:
        start = time.perf_counter()
        students[role], histories[role] = protocol.train_student(
            role, initial, teacher, data, settings, seed, verbose
        )
        if log:
            curve = histories[role]["val_accuracy"]
            best = int(np.argmax(curve))
            log(
                f"      {ROLES[role]}: validation accuracy "
                f"{curve[best]:.4f} at epoch {best + 1} of {len(curve)} "
                f"({time.perf_counter() - start:.0f} s)"
            )
    return students, histories


def verdict(accuracies):
    """One sentence: did distillation help, by how much, what share of gap.

    Args:
        accuracies: Test accuracy by role: `"teacher"`, `"student_scratch"`,
            `"student_distilled"` and optionally `"student_pseudo"`.
    """
    teacher = accuracies["teacher"]
    scratch = accuracies["student_scratch"]
    distilled = accuracies["student_distilled"]
    # Points as printed: a gain that rounds to 0.0 is no gain.
    gain = round(100 * (distilled - scratch), 1)
    if gain > 0:
        opening = (
            f"Distillation helped: the distilled student scores "
            f"{distilled:.4f} on the test set, {gain:+.1f} points over its "
            f"scratch twin ({scratch:.4f})"
        )
    elif gain < 0:
        opening = (
            f"Distillation hurt: the distilled student scores "
            f"{distilled:.4f} on the test set, {-gain:.1f} points below its "
            f"scratch twin ({scratch:.4f})"
        )
    else:
        opening = (
            f"Distillation made no difference: the distilled student scores "
            f"{distilled:.4f} on the test set, its scratch twin "
            f"{scratch:.4f}"
        )
    if teacher <= scratch:
        opening += (
            f"; the teacher ({teacher:.4f}) is no better than the scratch "
            "student, so there was no gap to close"
        )
    elif gain > 0 and distilled > teacher:
        opening += f", overtaking the teacher ({teacher:.4f})"
    elif gain > 0:
        share = (distilled - scratch) / (teacher - scratch)
        opening += (
            f", closing {100 * share:.0f}% of the gap to the teacher "
            f"({teacher:.4f})"
        )
    else:
        opening += f"; the teacher scores {teacher:.4f}"
    pseudo = accuracies.get("student_pseudo")
    if pseudo is None:
        return opening + "."
    return (
        f"{opening}. The teacher's top-class pseudo-labels alone gave "
        f"{pseudo:.4f} ({100 * (distilled - pseudo):+.1f} points for the "
        "soft targets)."
    )


def output_paths(dataset, models_dir, report_dir):
    """Model paths by role and the run folder of a demo on `dataset`."""
    prefix = f"demo_{Path(dataset).stem}"
    paths = {role: Path(models_dir) / f"{prefix}_{role}.h5" for role in ROLES}
    return paths, Path(report_dir or Path("runs") / prefix)


def run(
    dataset="digits",
    models_dir="saved_models",
    report_dir=None,
    seed=0,
    overwrite=False,
    verbose=0,
    teacher=None,
    **overrides,
):
    """Runs the demo on `dataset`; returns the run's record (`run.json`).

    Args:
        dataset: A name of `kd_keras.datasets.NAMES` or a `.npz` path.
            Defaults to `"digits"`.
        models_dir: Folder of the `.h5` files and cards. Defaults to
            `"saved_models"`.
        report_dir: Folder of `run.json`, `report.md` and the plots.
            Defaults to `runs/demo_<dataset>`.
        seed: Seed of the labelled samples, the initial weights and the
            data order. Defaults to `0`.
        overwrite: Whether existing outputs may be replaced. Defaults to
            `False`: they are refused before any training.
        verbose: Keras' `verbose` for the training. Defaults to `0`.
        teacher: A trained teacher `keras.Model` to use instead of training
            one. Defaults to `None`.
        **overrides: `labels` (labelled training samples, default
            `default_labels`; at least the training set's size for all),
            `teacher_epochs`, `epochs`, `patience`, `batch_size`, `alpha`,
            `temperature`, `architecture`; `None` keeps the default.
    """
    arrays = datasets.load(dataset)
    x_test, y_test = arrays[1]
    architecture = overrides.pop("architecture", None) or (
        protocol.default_architecture(arrays[0][0])
    )
    labelled = overrides.pop("labels", None) or default_labels(arrays[0][1])
    settings = dict(
        protocol.settings_for(architecture, **overrides),
        architecture=architecture,
        seed=seed,
    )
    paths, report_dir = output_paths(dataset, models_dir, report_dir)
    check_free(
        [
            *paths.values(),
            *map(cards.card_path, paths.values()),
            report_dir / report.RUN_FILE,
            *report.report_paths(report_dir),
        ],
        overwrite,
        remedy="pass --overwrite",
    )
    data = protocol.split(arrays, labelled, seed)
    train, validation, indices = data
    settings["labels"] = len(indices)
    unlabelled = len(train[1]) - len(indices)
    if teacher is None:
        print(
            f"[1/2] Training the teacher ({architecture}) for "
            f"{settings['teacher_epochs']} epochs on all {len(train[1]):,} "
            "training samples and their labels ..."
        )
        teacher = protocol.train_teacher(
            (train, validation),
            architecture,
            settings["teacher_epochs"],
            settings["batch_size"],
            seed,
            verbose,
        )
    else:
        check_fits(
            teacher,
            "teacher",
            train[0].shape[1:],
            datasets.num_classes(train[1]),
        )
        print(f"[1/2] Using the given teacher {teacher.name!r}.")
        settings.pop("teacher_epochs")
        settings["teacher"] = teacher.name
    print(
        f"[2/2] Training {'three' if unlabelled else 'two'} twins of the "
        f"student: {len(indices):,} labelled samples, {unlabelled:,} "
        f"unlabelled; T={settings['temperature']:g}, "
        f"alpha={settings['alpha']:g} ..."
    )
    students, histories = train_students(
        teacher, data, settings, seed, verbose, log=print
    )
    trained = {"teacher": teacher, **students}
    classes = {
        role: evaluation.predict_classes(model, x_test)
        for role, model in trained.items()
    }
    accuracies = {
        role: float(np.mean(predicted == y_test))
        for role, predicted in classes.items()
    }
    record = {
        "dataset": str(dataset),
        "settings": settings,
        "samples": {
            "labelled": len(indices),
            "unlabelled": unlabelled,
            "validation": len(validation[1]),
            "test": len(y_test),
        },
        "verdict": verdict(accuracies),
        "validation_accuracy": {
            role: evaluation.accuracy(model, *validation)
            for role, model in trained.items()
        },
        "models": [],
        "histories": histories,
    }
    methods = {
        "teacher": "supervised",
        "student_scratch": "supervised",
        "student_pseudo": "pseudo_labels",
        "student_distilled": "kd",
    }
    for role, model in trained.items():
        path = save_model(model, paths[role], overwrite=overwrite)
        card = cards.make_card(
            model,
            path,
            str(dataset),
            accuracies[role],
            methods[role],
            settings,
            seed,
            role=ROLES[role],
            latency_ms=round(evaluation.latency_ms(model, x_test), 4),
            teacher_agreement=round(
                float(np.mean(classes[role] == classes["teacher"])), 4
            ),
        )
        cards.write_json(cards.card_path(path), card, overwrite=overwrite)
        record["models"].append({**card, "path": str(path)})
    record["confusion_matrix"] = evaluation.confusion_matrix(
        y_test,
        classes["student_distilled"],
        datasets.num_classes(y_test),
    ).tolist()
    cards.write_json(report_dir / report.RUN_FILE, record, overwrite=overwrite)
    report.write_report(report_dir, overwrite=overwrite)
    return record
