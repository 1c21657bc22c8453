"""Notebooks in git keep only the outputs nbval checks; exercises are in sync with solutions."""

from pathlib import Path

import nbformat
import pytest

from tutorlib.course.builder import check_exercises_in_sync

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*.ipynb"))
MARK = "# NBVAL_CHECK_OUTPUT"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_only_checked_cells_carry_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and MARK not in c.source and (c.execution_count is not None or c.outputs)]
    assert "widgets" not in nb.metadata, f"{path.name} stores widget state: run scripts/notebook_outputs.py"
    assert not dirty, (f"{path.name}: cells {dirty} carry outputs or execution counts that nbval does not "
                       f"check. Run: python scripts/notebook_outputs.py {path.relative_to(ROOT)}")


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_checked_cells_have_outputs_to_compare(path):
    nb = nbformat.read(path, as_version=4)
    empty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and MARK in c.source and not c.outputs]
    assert not empty, (f"{path.name}: cells {empty} are marked {MARK} but store no output, so nbval "
                       f"compares nothing. Run: python scripts/notebook_outputs.py --execute {path.relative_to(ROOT)}")


def test_exercises_are_generated_from_the_solutions():
    stale = check_exercises_in_sync(ROOT / "solutions", ROOT / "exercises")
    assert stale == [], f"exercises out of sync with solutions: {stale}. Run: tutorlib build-exercises"


# A progress bar in a saved output: tqdm's text ("Loading weights:   0%|          | 0/103 [00:00<?, ?it/s]") or
# the widget it becomes in JupyterLab, which a saved notebook shows frozen at its first frame.
PROGRESS = ("it/s]", "%|", "application/vnd.jupyter.widget-view+json", "Loading weights")


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_saved_outputs_hold_no_progress_bars(path):
    nb = nbformat.read(path, as_version=4)
    bars = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
            for out in c.outputs if any(mark in str(out) for mark in PROGRESS)]
    assert not bars, (f"{path.name}: cells {sorted(set(bars))} store a progress bar in their output. Run: "
                      f"python scripts/notebook_outputs.py --execute {path.relative_to(ROOT)}")


@pytest.mark.real
def test_loading_an_offline_model_draws_no_progress_bar(capfd):
    """The cause of those bars: transformers draws "Loading weights" on every load; the kit turns it off."""
    from tutorlib.loading.models import load_model

    load_model("minilm-l6")
    out, err = capfd.readouterr()
    assert "Loading weights" not in out + err and "it/s]" not in out + err
