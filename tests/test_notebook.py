"""Issue 22 (notebooks): docs/notebooks/quickstart.ipynb runs top to bottom in a real Jupyter kernel (nbclient,
ipykernel) on a copy of the sample photos' index: its search shows a grid of inline thumbnails, the fused query a
table, feedback a refined grid, and the plot an image."""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "notebooks" / "quickstart.ipynb"


def outputs(cell, mime: str) -> list[str]:
    return [o["data"][mime] for o in cell.get("outputs", []) if mime in o.get("data", {})]


def test_quickstart_notebook_runs_on_the_sample_index(index_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("MMINDEX_INDEX", str(index_copy))
    # the kernel is this interpreter's: its folder first on PATH, where the kernel spec's `python` is looked up
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in [str(NOTEBOOK.parents[2]), os.environ.get(
        "PYTHONPATH", "")] if p))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code")  # committed without outputs
    NotebookClient(nb, timeout=120, startup_timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # raises CellExecutionError on error

    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = ast.literal_eval(outputs(code[0], "text/plain")[0])
    assert counts["segments"] == 7
    cats, fused, refined, table, plot = code[1:]
    grid = outputs(cats, "text/html")[0]
    assert grid.count("data:image/jpeg;base64,") == 4 and "chelsea.jpg" in grid  # the cat photo among the cats
    assert "why:espresso" in outputs(fused, "text/html")[0]
    assert outputs(refined, "text/html")[0].count("data:image/jpeg;base64,") >= 1
    assert "n07920052" in outputs(table, "text/html")[0]  # espresso, the coffee photo's best concept
    assert outputs(plot, "image/png"), "the plot cell shows no image"
    assert not list(tmp_path.glob("sample-*"))  # the index given was used: nothing indexed anew
