"""The grader's results: per question, per notebook, in total; as JSON and as a Markdown summary.

``grades.json`` is for machines (CI artifacts, a teacher's spreadsheet); ``grades.md`` is what a
learner reads on the CI run's summary page: one table per notebook and the total.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tutorlib.files import write_atomic

STATUS_ICON = {"passed": "✅ passed", "failed": "❌ failed", "timeout": "⏱️ timeout",
               "kernel died": "💥 kernel died", "missing": "❓ missing", "not run": "⏭️ not run"}


@dataclass
class QuestionResult:
    """One graded question. ``status``: passed, failed, timeout, kernel died, missing or not run.
    ``message`` is what the learner sees (the check's message, or the error's last lines)."""

    grade_id: str
    points: float
    max_points: float
    status: str
    message: str = ""
    cell: int | None = None  # 1-based position of the test cell in the notebook


@dataclass
class NotebookResult:
    """All questions of one notebook, the solution whose tests ran (None: the notebook's own)."""

    path: str
    solution: str | None = None
    questions: list[QuestionResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall time for this notebook, kernel start included
    kernel_start_s: float = 0.0

    @property
    def points(self) -> float:
        return sum(q.points for q in self.questions)

    @property
    def max_points(self) -> float:
        return sum(q.max_points for q in self.questions)


@dataclass
class GradeReport:
    """Every graded notebook; ``pass_mark`` is a fraction of all points (None: no pass mark)."""

    notebooks: list[NotebookResult] = field(default_factory=list)
    pass_mark: float | None = None

    @property
    def points(self) -> float:
        return sum(nb.points for nb in self.notebooks)

    @property
    def max_points(self) -> float:
        return sum(nb.max_points for nb in self.notebooks)

    @property
    def fraction(self) -> float:
        """Points earned / points possible (0.0 when there is nothing to score)."""
        return self.points / self.max_points if self.max_points else 0.0

    @property
    def passed(self) -> bool | None:
        """True/False against the pass mark; None when there is no pass mark."""
        return None if self.pass_mark is None else self.fraction >= self.pass_mark - 1e-12

    def to_dict(self) -> dict:
        """Plain data for ``grades.json``: totals, pass mark, and every notebook's questions."""
        return {
            "points": self.points, "max_points": self.max_points, "fraction": round(self.fraction, 4),
            "pass_mark": self.pass_mark, "passed": self.passed,
            "notebooks": [dict(asdict(nb), points=nb.points, max_points=nb.max_points) for nb in self.notebooks],
        }

    def to_markdown(self) -> str:
        """The summary a learner reads: a table per notebook (question, points, status, message)."""
        verdict = ""
        if self.pass_mark is not None:
            verdict = f" · pass mark {self.pass_mark:.0%}: **{'passed' if self.passed else 'not yet passed'}**"
        lines = ["# Grades", "", f"**Total: {_num(self.points)} / {_num(self.max_points)} points "
                 f"({self.fraction:.0%})**{verdict}", ""]
        for nb in self.notebooks:
            lines += [f"## {nb.path}: {_num(nb.points)} / {_num(nb.max_points)} points", ""]
            if nb.questions:
                lines += ["| question | points | status | message |", "|---|---|---|---|"]
                lines += [f"| `{q.grade_id}` | {_num(q.points)} / {_num(q.max_points)} | "
                          f"{STATUS_ICON.get(q.status, q.status)} | {_cell_text(q.message)} |" for q in nb.questions]
            else:
                lines.append("No graded questions found in this notebook.")
            lines += [""] + [f"- {note}" for note in nb.notes] + ([""] if nb.notes else [])
        return "\n".join(lines).rstrip() + "\n"

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``grades.json`` and ``grades.md`` into ``out_dir`` (created if needed); return both paths."""
        out = Path(out_dir)
        json_path, md_path = out / "grades.json", out / "grades.md"
        write_atomic(json_path, json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")
        write_atomic(md_path, self.to_markdown())
        return json_path, md_path


def _num(x: float) -> str:
    return f"{x:g}"


def _cell_text(message: str) -> str:
    """A message inside a Markdown table cell: HTML-escaped, '|' escaped, line breaks as <br>."""
    return html.escape(message.strip(), quote=False).replace("|", "\\|").replace("\n", "<br>")
