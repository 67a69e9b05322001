"""The notebooks run top to bottom (executed with nbclient, a short training budget)."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


# what each notebook must print when it ran through
EXPECTED = {
    "quickstart.ipynb": ("user 0:", "test:"),
    "ablation.ipynb": ("12 runs, 4 configurations, 0 unfinished", "xsimgcl", "seeds=3"),
    "pyg_to_recommendations.ipynb": ("recommendations; the first user:", "user,item,rank,score"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_executes(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSLREC_NOTEBOOK_EPOCHS", "5")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3").execute(cwd=str(NOTEBOOKS))
    text = "".join(
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )
    for expected in EXPECTED[name]:
        assert expected in text, f"{name}: {expected!r} not in its output"
