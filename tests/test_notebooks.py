"""Every tutorial notebook runs end to end, offline.

Each tutorial promises to run in 3 minutes on 2 CPU cores. How long one
took is a measurement, not a pass/fail condition (a busy machine would fail
it): it is printed at the end of the run, with a warning when over budget.
"""

import os
import time
import warnings
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).parents[1]
NOTEBOOKS = sorted(ROOT.glob("notebooks/*.ipynb"))
BUDGET_SECONDS = 180


def test_there_are_notebooks():
    assert NOTEBOOKS


def test_notebooks_write_no_files_beside_themselves():
    """A `%%writefile` target is a variable (a temporary folder), not a name
    relative to the notebooks folder."""
    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            first = cell.source.split("\n", 1)[0].split()
            if cell.cell_type == "code" and first[:1] == ["%%writefile"]:
                assert first[-1].startswith("{"), (path.name, first)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path, record_property):
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    # The kernel imports this checkout's kd_keras, whatever is installed.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    client.execute(env=env)
    seconds = time.perf_counter() - start
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors
    record_property("seconds", round(seconds, 1))
    if seconds > BUDGET_SECONDS:
        warnings.warn(
            f"{path.name} took {seconds:.0f} s, over its {BUDGET_SECONDS} s "
            "budget (on a busy machine, or a regression)",
            stacklevel=1,
        )
