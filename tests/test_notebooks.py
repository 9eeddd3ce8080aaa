"""Every notebook under notebooks/ executes without error and draws at least one figure.

The kernel runs with ``MPLBACKEND=Agg``, under which ``plt.show()`` displays nothing: a notebook
starts with ``%matplotlib inline`` (which takes precedence) so that its figures become outputs.
"""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow  # several processes or whole runs: see pyproject.toml's markers

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS or [None], ids=[p.name for p in NOTEBOOKS] or ["none"])
def test_notebook_runs(path, tmp_path, monkeypatch):
    assert path is not None, "no notebooks found under notebooks/"  # fail, never skip, when empty
    monkeypatch.setenv("LASER_NOTEBOOK_SMALL", "1")  # notebooks may shrink their settings
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )  # cwd: nothing lands in the repo
    client.execute()  # raises CellExecutionError on a failing cell
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    assert any("image/png" in out.get("data", {}) for out in outputs), "the notebook draws no figure"
