"""Every tutorial notebook runs end to end, offline.

The tests run each notebook at a small training budget: the values in
`SMALL_BUDGET` replace those of its cell tagged "parameters" (papermill's
convention), so every cell runs in seconds. The outputs stored in the
notebooks, and the time each takes at its full budget, come from
`benchmarks/notebooks.py`.
"""

import ast
import os
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

# Whole programs: left out of make test-fast.
pytestmark = pytest.mark.program

ROOT = Path(__file__).parents[1]
NOTEBOOKS = sorted(ROOT.glob("notebooks/*.ipynb"))
SMALL_BUDGET = {
    "EPOCHS": 2,
    "TEACHER_EPOCHS": 2,
    "TRIALS": 2,
    "SEEDS": 2,
    "IMAGES": 200,
}


def parameters_cell(notebook):
    """The index of the cell tagged "parameters", or `None`."""
    for index, cell in enumerate(notebook.cells):
        if "parameters" in cell.metadata.get("tags", []):
            return index
    return None


def with_small_budget(notebook):
    """`notebook` with a cell after its parameters cell that sets the
    parameters `SMALL_BUDGET` names (each must be one it assigns)."""
    index = parameters_cell(notebook)
    if index is None:
        return notebook
    assigned = {
        target.id
        for node in ast.parse(notebook.cells[index].source).body
        for target in getattr(node, "targets", [])
    }
    unknown = assigned - set(SMALL_BUDGET)
    assert not unknown, f"no small value for {sorted(unknown)}"
    source = "\n".join(f"{name} = {SMALL_BUDGET[name]!r}" for name in assigned)
    cell = nbformat.v4.new_code_cell(
        source, metadata={"tags": ["injected-parameters"]}
    )
    notebook.cells.insert(index + 1, cell)
    return notebook


def test_there_are_notebooks():
    assert NOTEBOOKS


def test_the_small_budget_is_injected_after_the_parameters():
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("import numpy"),
        nbformat.v4.new_code_cell(
            "EPOCHS = 30", metadata={"tags": ["parameters"]}
        ),
        nbformat.v4.new_code_cell("print(EPOCHS)"),
    ]
    sources = [cell.source for cell in with_small_budget(notebook).cells]
    assert sources == [
        "import numpy",
        "EPOCHS = 30",
        "EPOCHS = 2",
        "print(EPOCHS)",
    ]


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
    notebook = with_small_budget(nbformat.read(path, as_version=4))
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
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors
    record_property("seconds", round(time.perf_counter() - start, 1))
