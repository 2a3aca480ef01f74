"""The main job: a teacher, a student from scratch, a distilled student.

Scratch and distilled students start from copies of the same initial
weights and get the same budget (epochs, batch size, optimizer, data
order), so the difference between them is the teacher's. Each model is
saved as `.h5` with a JSON card; the run's numbers and plots go to a report
folder.
"""

from pathlib import Path

import keras
import numpy as np

from kd_keras import cards, datasets, evaluation, models, report
from kd_keras.distiller import Distiller
from kd_keras.saving import save_model

ROLES = {
    "teacher": "teacher",
    "student_scratch": "scratch student",
    "student_distilled": "distilled student",
}
# Budgets fit 2 CPU cores. The distillation settings are the best of the
# sweeps in benchmarks/ (low temperatures, equal weights): with these short
# budgets, T=4 and alpha=0.1 left the students behind their scratch twins.
DEFAULTS = {
    "mlp": dict(
        teacher_epochs=30, epochs=20, batch_size=64, alpha=0.5, temperature=1.0
    ),
    "cnn": dict(
        teacher_epochs=8, epochs=10, batch_size=128, alpha=0.5, temperature=2.0
    ),
}


def settings_for(architecture, **overrides):
    """`DEFAULTS[architecture]` updated with the overrides that are given.

    Args:
        architecture: `"mlp"` or `"cnn"`.
        **overrides: Settings; `None` keeps the default.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    return {**DEFAULTS[architecture], **given}


def default_architecture(x):
    """`"mlp"` for feature vectors, `"cnn"` for images."""
    return "cnn" if x.ndim == 4 else "mlp"


def _hard_loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _fit(model, data, epochs, batch_size, seed, verbose):
    keras.utils.set_random_seed(seed)
    (x_train, y_train), validation = data
    return model.fit(
        x_train,
        y_train,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=validation,
        verbose=verbose,
    )


def train_teacher(
    data, architecture=None, epochs=30, batch_size=64, seed=0, verbose=0
):
    """Trains a built-in teacher on `data` and returns it."""
    x_train, y_train = data[0]
    keras.utils.set_random_seed(seed)
    teacher = models.build(
        architecture or default_architecture(x_train),
        "teacher",
        x_train.shape[1:],
        datasets.num_classes(y_train),
    )
    teacher.compile("adam", _hard_loss(), metrics=["accuracy"])
    _fit(teacher, data, epochs, batch_size, seed, verbose)
    return teacher


def new_student(data, architecture=None, seed=0):
    """A built-in student for `data`, initialised from `seed`."""
    x_train, y_train = data[0]
    keras.utils.set_random_seed(seed)
    return models.build(
        architecture or default_architecture(x_train),
        "student",
        x_train.shape[1:],
        datasets.num_classes(y_train),
    )


def copy_model(model, name):
    """A copy of `model` with the same weights, named `name`."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    copy.name = name
    return copy


def train_scratch(student, data, epochs=20, batch_size=64, seed=0, verbose=0):
    """Trains `student` on the labels alone; returns its `History`."""
    student.compile("adam", _hard_loss(), metrics=["accuracy"])
    return _fit(student, data, epochs, batch_size, seed, verbose)


def distill(
    teacher,
    student,
    data,
    epochs=20,
    batch_size=64,
    seed=0,
    alpha=0.1,
    temperature=4.0,
    distillation_loss=None,
    distillation_loss_weights=None,
    verbose=0,
):
    """Trains `student` from `teacher`; returns its `History`.

    The distillation loss is Hinton KD at `temperature` unless
    `distillation_loss` (a loss or a list, with its weights) is given.
    """
    distiller = Distiller(
        teacher,
        student,
        distillation_loss,
        alpha=alpha,
        temperature=temperature,
        distillation_loss_weights=distillation_loss_weights,
    )
    distiller.compile("adam", metrics=["accuracy"])
    return _fit(distiller, data, epochs, batch_size, seed, verbose)


def output_paths(dataset, models_dir, report_dir):
    """Model paths by role and the run folder of a demo on `dataset`."""
    prefix = f"demo_{Path(dataset).stem}"
    paths = {role: Path(models_dir) / f"{prefix}_{role}.h5" for role in ROLES}
    return paths, Path(report_dir or Path("runs") / prefix)


def _check_free(paths, overwrite):
    taken = [str(p) for p in paths if p.exists()]
    if taken and not overwrite:
        raise FileExistsError(
            f"{', '.join(taken)} exist(s); pass --overwrite to replace, or "
            "choose other output folders."
        )


def run(
    dataset="digits",
    models_dir="saved_models",
    report_dir=None,
    seed=0,
    overwrite=False,
    verbose="auto",
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
        seed: Seed of the initial weights and the data order. Defaults to
            `0`.
        overwrite: Whether existing outputs may be replaced. Defaults to
            `False`: they are refused before any training.
        verbose: Keras' `verbose` for the training. Defaults to `"auto"`.
        teacher: A trained teacher `keras.Model` to use instead of training
            one. Defaults to `None`.
        **overrides: `teacher_epochs`, `epochs`, `batch_size`, `alpha`,
            `temperature`, `architecture`; `None` keeps the default.
    """
    data = datasets.load(dataset)
    (x_train, y_train), (x_test, y_test) = data
    architecture = overrides.pop("architecture", None) or (
        default_architecture(x_train)
    )
    settings = dict(
        settings_for(architecture, **overrides),
        architecture=architecture,
        seed=seed,
    )
    paths, report_dir = output_paths(dataset, models_dir, report_dir)
    _check_free(
        [
            *paths.values(),
            *map(cards.card_path, paths.values()),
            report_dir / report.RUN_FILE,
            report_dir / "report.md",
            *(report_dir / name for name in report.PLOTS),
        ],
        overwrite,
    )
    budget = dict(batch_size=settings["batch_size"], seed=seed, verbose=verbose)

    if teacher is None:
        print(f"[1/3] Training the teacher ({architecture}) on {dataset} ...")
        teacher = train_teacher(
            data, architecture, settings["teacher_epochs"], **budget
        )
    else:
        datasets.check_fits(teacher, "teacher", x_train, y_train)
        print(f"[1/3] Using the given teacher {teacher.name!r}.")
        settings.pop("teacher_epochs")
        settings["teacher"] = teacher.name
    trained = {"teacher": teacher}
    initial = new_student(data, architecture, seed)
    print("[2/3] Training the student from scratch ...")
    trained["student_scratch"] = copy_model(initial, "student_scratch")
    scratch = train_scratch(
        trained["student_scratch"], data, settings["epochs"], **budget
    )
    print("[3/3] Distilling the same student from the teacher ...")
    trained["student_distilled"] = copy_model(initial, "student_distilled")
    distilled = distill(
        trained["teacher"],
        trained["student_distilled"],
        data,
        settings["epochs"],
        alpha=settings["alpha"],
        temperature=settings["temperature"],
        **budget,
    )

    record = {
        "dataset": str(dataset),
        "settings": settings,
        "models": [],
        "histories": {
            "scratch": scratch.history,
            "distilled": distilled.history,
        },
    }
    methods = {
        "teacher": "supervised",
        "student_scratch": "supervised",
        "student_distilled": "kd",
    }
    classes = {
        role: evaluation.predict_classes(model, x_test)
        for role, model in trained.items()
    }
    for role, model in trained.items():
        path = save_model(model, paths[role], overwrite=overwrite)
        card = cards.make_card(
            model,
            path,
            str(dataset),
            np.mean(classes[role] == y_test),
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
    report.write_report(report_dir)
    return record
