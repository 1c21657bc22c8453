"""The grader's results: per question, per notebook, in total; as JSON and as a Markdown summary.

``grades.json`` is for machines (CI artifacts, a teacher's spreadsheet); ``grades.md`` is what a
learner reads on the CI run's summary page: one table per notebook and the total.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tutorlib.files import write_atomic


def printable(text: str, *, one_line: bool = False) -> str:
    r"""``text`` made safe to show a person: in a terminal (the grade commands print their reports), a Markdown
    viewer or a spreadsheet. Learner code chooses much of what a report says (its error messages, the values it
    gives, its folder's name), and a character that is not printable can act instead of being read: ESC starts
    a terminal command (clearing the screen, writing the clipboard), CR returns to the line's start and
    overwrites it, U+202E reverses the text after it. Each such character (Unicode's control, format,
    surrogate, private-use and unassigned ones) becomes ``?``; a tab becomes a space. Line breaks stay, unless
    ``one_line``: then every run of white space, line breaks included, becomes one space.

        >>> printable("8 / 8\x1b]52;c;aGk=\x07\rforged")
        '8 / 8?]52;c;aGk=?\nforged'
    """
    text = str(text).replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    if one_line:
        text = " ".join(text.split())
    return "".join(ch if ch.isprintable() or ch == "\n" else "?" for ch in text)


# Characters Markdown (GitHub's included) or the HTML it allows acts on anywhere in a line: links and images
# ([ ] !), emphasis (* _ ~), code (`), headings (#), table cells (|), tags and entities (< > &), math ($), escapes.
_MARKDOWN_ACTIVE = frozenset("\\`*_[]#|<>!~&$@")  # @: an e-mail address becomes a link
# A bare address is a link too (GitHub's "autolinks"): a backslash before its "://" or after "www" breaks it.
_BARE_LINK = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*)(://)|(\bwww)(\.)")
# ... and at the start of a line: a list item (- + 1. 1)) or a heading's underline (= -); ">" is escaped above.
_LINE_MARKER = re.compile(r"^(\s*)([-+=])")
_LIST_NUMBER = re.compile(r"^(\s*\d+)([.)])")


def markdown_inert(text: str, *, one_line: bool = False) -> str:
    r"""Learner-chosen ``text`` for a Markdown file, shown exactly as typed: :func:`printable`, then a backslash
    before every character Markdown would act on, so that it makes no link (a bare address included), image,
    heading, list, table cell, tag or emphasis of its own (CommonMark shows a backslash-escaped punctuation
    character as itself).

        >>> markdown_inert("![x](http://evil.invalid/p.png) | **7/7**")
        '\\!\\[x\\](http\\://evil.invalid/p.png) \\| \\*\\*7/7\\*\\*'
    """
    lines = []
    for line in printable(text, one_line=one_line).split("\n"):
        line = "".join("\\" + ch if ch in _MARKDOWN_ACTIVE else ch for ch in line)
        line = _BARE_LINK.sub(lambda m: f"{m[1]}\\{m[2]}" if m[1] else f"{m[3]}\\{m[4]}", line)
        lines.append(_LIST_NUMBER.sub(r"\1\\\2", _LINE_MARKER.sub(r"\1\\\2", line)))
    return "\n".join(lines)


STATUS_ICON = {"passed": "✅ passed", "partial": "🟡 partly passed", "failed": "❌ failed", "timeout": "⏱️ timeout",
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
    parts: list[dict] = field(default_factory=list)  # partial credit: label, points, max_points, status


@dataclass
class NotebookResult:
    """All questions of one notebook, the solution whose tests ran (None: the notebook's own)."""

    path: str
    solution: str | None = None
    questions: list[QuestionResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall time for this notebook, kernel start included
    kernel_start_s: float = 0.0
    flags: list[str] = field(default_factory=list)  # tamper evidence: why a teacher must look
    free_text: dict[str, str] = field(default_factory=dict)  # "Think" answers: grade_id -> text, marked by hand
    review: str | None = None  # the teacher's decision on a flagged notebook ("accept", or a note)

    @property
    def scored(self) -> float:
        """Points the checks gave, whether or not they are withheld."""
        return sum(q.points for q in self.questions)

    @property
    def withheld(self) -> bool:
        """Flagged for review and not (yet) accepted by the teacher: the points do not count."""
        return bool(self.flags) and self.review != "accept"

    @property
    def points(self) -> float:
        return 0.0 if self.withheld else self.scored

    @property
    def max_points(self) -> float:
        return sum(q.max_points for q in self.questions)


@dataclass
class GradeReport:
    """Every graded notebook; ``pass_mark`` is a fraction of all points (None: no pass mark)."""

    notebooks: list[NotebookResult] = field(default_factory=list)
    pass_mark: float | None = None
    feedback_only: bool = False  # visible checks only (a learner's own run): not a grade

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
            "pass_mark": self.pass_mark, "passed": self.passed, "feedback_only": self.feedback_only,
            "notebooks": [dict(asdict(nb), points=nb.points, max_points=nb.max_points, scored=nb.scored,
                               withheld=nb.withheld) for nb in self.notebooks],
        }

    def to_markdown(self) -> str:
        """The summary a learner reads: a table per notebook (question, points, status, message)."""
        verdict = ""
        if self.pass_mark is not None:
            verdict = f" · pass mark {self.pass_mark:.0%}: **{'passed' if self.passed else 'not yet passed'}**"
        title = "# Feedback from the visible checks" if self.feedback_only else "# Grades"
        lines = [title, ""]
        if self.feedback_only:
            lines += ["These are the checks you can see in the exercises. **Your grade is computed by your "
                      "teacher**, who also runs hidden tests on other inputs: passing every visible check does "
                      "not mean full marks.", ""]
        lines += [f"**Total: {_num(self.points)} / {_num(self.max_points)} points "
                  f"({self.fraction:.0%})**{verdict}", ""]
        for nb in self.notebooks:
            lines += [f"## {_cell_text(nb.path)}: {_num(nb.points)} / {_num(nb.max_points)} points", ""]
            if nb.flags:
                state = "accepted by the teacher" if not nb.withheld else \
                    f"the checks gave {_num(nb.scored)} points, withheld until a teacher reviews these cells"
                lines += [f"**⚠️ Flagged for review** ({state}):", ""] + [f"- {_cell_text(f)}" for f in nb.flags] + [""]
            if nb.questions:
                lines += ["| question | points | status | message |", "|---|---|---|---|"]
                for q in nb.questions:
                    parts = "<br>".join(f"{p['label']}: {_num(p['points'])} / {_num(p['max_points'])}" for p in q.parts)
                    message = _cell_text(q.message) + (("<br>" if q.message.strip() else "") + parts if parts else "")
                    lines.append(f"| `{q.grade_id}` | {_num(q.points)} / {_num(q.max_points)} | "
                                 f"{STATUS_ICON.get(q.status, q.status)} | {message} |")
            else:
                lines.append("No graded questions found in this notebook.")
            for gid, text in nb.free_text.items():
                lines += ["", f"**{_cell_text(gid)}** (free text, marked by hand):", ""] + \
                    [f"> {ln}" for ln in markdown_inert(text).splitlines()]
            lines += [""] + [f"- {_cell_text(note)}" for note in nb.notes] + ([""] if nb.notes else [])
        return "\n".join(lines).rstrip() + "\n"

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``grades.json`` and ``grades.md`` into ``out_dir`` (created if needed); return both paths."""
        out = Path(out_dir)
        json_path, md_path = out / "grades.json", out / "grades.md"
        # ASCII: every character outside it is written as an escape (\u001b), so the file shows nothing a terminal
        # would act on, and a program reading it gets the learner's exact text back.
        write_atomic(json_path, json.dumps(self.to_dict(), indent=2, ensure_ascii=True) + "\n")
        write_atomic(md_path, self.to_markdown())
        return json_path, md_path


def _num(x: float) -> str:
    return f"{x:g}"


def _cell_text(message: str) -> str:
    """A message inside a Markdown table cell or list item: :func:`markdown_inert`, line breaks as <br>."""
    return markdown_inert(str(message).strip()).replace("\n", "<br>")
