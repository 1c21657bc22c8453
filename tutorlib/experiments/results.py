"""What a comparison found: one row per method, a plain-text table, JSON, plots, and a safe output folder.

    >>> from tutorlib.experiments.results import ComparisonResult
    >>> result = ComparisonResult.load("results/sentiment")   # doctest: +SKIP  a committed full-mode run
    >>> print(result.table())                                 # doctest: +SKIP
    >>> result.to_dataframe()[["method", "accuracy", "median_step_seconds"]]   # doctest: +SKIP

Units in rows: accuracies, F1 and ROUGE in [0, 1]; seconds; ``*_mb`` MiB; ``*_bytes`` bytes; energy kWh.
A folder written by :meth:`ComparisonResult.save` holds ``results.json`` (everything but the per-item
predictions), ``predictions.json``, ``table.txt`` and the PNG plots.
"""

from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tutorlib import Mode
from tutorlib.experiments.output_folder import RESULTS_FILE
from tutorlib.files import atomic_file, write_atomic
from tutorlib.training.distributed import distributed_environment
from tutorlib.training.loop import History

PREDICTIONS_FILE, TABLE_FILE = "predictions.json", "table.txt"


@dataclass
class ComparisonResult:
    """The outcome of :func:`tutorlib.experiments.compare.compare`.

    ``rows``: one flat dict per method (method, quality metrics, :class:`~tutorlib.training.measure.RunCost` fields,
    ``stored_params``, ``trainable_fraction``, ``final_loss``, ``eval_seconds``). ``histories``: method ->
    :class:`~tutorlib.training.loop.History`. ``predictions``: method -> per-item dicts. ``examples``: method -> a
    few summaries. ``references``: rows no method trains for (lead sentence, majority class).
    ``paired_tests``: each pair of methods on the same items (p-values).
    """

    task: str
    model: str
    dataset: str
    mode: Mode  # "fast", "workshop" or "full": how big a budget (see tutorlib.mode)
    seed: int
    prefix_length: int
    budget: dict
    data_summary: dict
    rows: list[dict]
    histories: dict[str, History] = field(default_factory=dict)
    predictions: dict[str, list] = field(default_factory=dict)
    examples: dict[str, list] = field(default_factory=dict)
    references: list[dict] = field(default_factory=list)
    paired_tests: list[dict] = field(default_factory=list)
    learning_rates: dict[str, float] = field(default_factory=dict)
    prefix_init_text: str | None = None  # None: the prefix started random; else from these words' keys/values
    interrupted: bool = False
    share_text: bool = True  # False: saved files keep ids and scores, never documents or summaries (licence)
    environment: dict = field(default_factory=dict)
    wall_seconds: float = 0.0

    @property
    def fast(self) -> bool:
        """True for a fast-mode run: its numbers show the machinery, not the answer."""
        return self.mode == "fast"

    # ---------------------------------------------------------------- views
    def row(self, method: str) -> dict:
        """The row of one method."""
        for r in self.rows:
            if r["method"] == method:
                return r
        raise KeyError(f"No method {method!r} in this result; it has {[r['method'] for r in self.rows]}.")

    def to_dataframe(self):
        """The rows as a pandas DataFrame, one row per method (reference rows not included)."""
        import pandas as pd

        return pd.DataFrame(self.rows)

    def to_dict(self, predictions: bool = False) -> dict:
        """Everything as JSON-able data (NaN -> None); per-item predictions only if asked."""
        data = {k: v for k, v in asdict(self).items() if k not in ("histories", "predictions")}
        data["histories"] = {m: h.to_dict() for m, h in self.histories.items()}
        if not self.share_text:
            data["examples"] = {}
        if predictions:
            data["predictions"] = self.saved_predictions()
        return _json_safe(data)

    def saved_predictions(self) -> dict[str, list]:
        """The per-item predictions as written to predictions.json: without the generated text when the
        dataset's texts may not be shared (a summary can copy sentences of a copyrighted abstract)."""
        if self.share_text:
            return self.predictions
        return {m: [{k: v for k, v in p.items() if k != "prediction"} for p in items]
                for m, items in self.predictions.items()}

    def table(self) -> str:
        """The comparison as plain text: a header, a quality table, the paired tests, a cost table, notes."""
        from tutorlib.experiments.tables import format_table

        return format_table(self)

    def examples_text(self, width: int = 110) -> str:
        """A few generated summaries per method beside the reference (summarise)."""
        from tutorlib.experiments.tables import format_examples

        return format_examples(self, width)

    # ---------------------------------------------------------------- files
    def save(self, out_dir, plots: bool = True) -> list[Path]:
        """Write results.json, predictions.json, table.txt and the PNG plots into ``out_dir`` (created if
        needed; each file written whole, then renamed into place). Returns the paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [write_atomic(out / RESULTS_FILE, json.dumps(self.to_dict(), indent=1) + "\n"),
                 write_atomic(out / PREDICTIONS_FILE, json.dumps(_json_safe(self.saved_predictions())) + "\n"),
                 write_atomic(out / TABLE_FILE, self.table() + "\n")]
        if plots:
            from tutorlib.experiments import plots as figures

            for name, figure in figures.result_figures(self).items():
                with atomic_file(out / f"{name}.png") as tmp:
                    figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
                paths.append(out / f"{name}.png")
        return paths

    @classmethod
    def load(cls, folder) -> ComparisonResult:
        """Read a folder written by :meth:`save` (predictions too, when predictions.json is there)."""
        folder = Path(folder)
        if not (folder / RESULTS_FILE).is_file():
            raise FileNotFoundError(f"{folder} has no {RESULTS_FILE}: not a folder written by compare() or save().")
        data = json.loads((folder / RESULTS_FILE).read_text())
        data["histories"] = {m: History.from_dict(h) for m, h in data.get("histories", {}).items()}
        if (folder / PREDICTIONS_FILE).is_file():
            data["predictions"] = json.loads((folder / PREDICTIONS_FILE).read_text())
        if not data.get("mode"):  # saved before workshop mode existed: only "fast" was recorded
            data["mode"] = "fast" if data.get("fast") else "full"
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def find_results(root="results") -> dict[str, ComparisonResult]:
    """Every saved comparison under ``root`` (one folder level down), by folder name, e.g.
    ``find_results()["sentiment"]``. Folders without a results.json are skipped, and so are hidden ones
    (a comparison still being written stages in a dot-folder)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder; run `tutorlib compare ... --out {root}/NAME` first.")
    return {folder.name: ComparisonResult.load(folder) for folder in sorted(root.iterdir())
            if (folder / RESULTS_FILE).is_file() and not folder.name.startswith(".")}


def _json_safe(value):
    """Tuples -> lists, NaN/inf -> None (JSON has no NaN), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def environment() -> dict:
    """Where the numbers were measured: versions, device and threads (a CPU's step time depends on them)."""
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "platform": platform.platform(),
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
            "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), **distributed_environment(),
            # Other work on the machine slows every step: a load above the core count means sharing.
            "load_average_1_5_15_min": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
