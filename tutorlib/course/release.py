"""The learner's copy of the course: everything a learner needs, no solution and no hidden test.

``tutorlib release OUT`` (teacher side) copies the repository's tracked files into ``OUT`` except
the teacher's private material: ``solutions/`` (every answer and hidden test) and ``tests/`` (the
grader's own fixtures hold solved notebooks and hidden tests too). The exercises are rebuilt from
the solutions first, so they are current. Then :func:`find_leaks` reads every copied file for a
solution or hidden-test marker in a notebook and for any line of hidden-test code; a leak stops
the release with the file named. The teacher keeps ``solutions/`` private and grades with it
(:mod:`tutorlib.course.gradebook`); the learner's fork runs only the visible checks.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tutorlib.course.builder import _HIDDEN, _SOLUTION, CourseError, build_exercises, read_notebook

PRIVATE = ("solutions", "tests")  # top-level folders that never leave the teacher's copy
_SKIP_PARTS = {".git", ".venv", "__pycache__", ".ipynb_checkpoints", "runs", "grades", ".pytest_cache"}
MIN_SECRET_LINE = 25  # shorter hidden-test lines ("for layer, r in ...:") are not secrets by themselves


def _files(repo: Path) -> list[Path]:
    """The repository's tracked files (git), or every file outside the skipped folders."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=repo, capture_output=True, check=True).stdout
        paths = [repo / p for p in out.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        paths = [p for p in repo.rglob("*") if p.is_file()]
    return [p for p in paths if p.is_file() and not _SKIP_PARTS & set(p.relative_to(repo).parts)]


def hidden_lines(solutions_dir: Path) -> set[str]:
    """Every line of hidden-test code in the solutions (stripped) that is long enough to be telling
    and appears nowhere in the built exercises (so it is only in the hidden tests)."""
    from tutorlib.course.builder import make_exercise

    secret: set[str] = set()
    public: set[str] = set()
    for path in sorted(solutions_dir.rglob("*.ipynb")):
        nb = read_notebook(path)
        public.update(line.strip() for c in make_exercise(nb).cells for line in c.source.splitlines())
        for cell in nb.cells:
            inside = False
            for line in cell.source.splitlines():
                if _HIDDEN[0].match(line):
                    inside = True
                elif _HIDDEN[1].match(line):
                    inside = False
                elif inside and len(line.strip()) >= MIN_SECRET_LINE:
                    secret.add(line.strip())
    return secret - public


def find_leaks(folder: str | Path, solutions_dir: str | Path) -> list[str]:
    """'file: what' for every solution/hidden-test marker in a notebook under ``folder`` and every
    file holding a line of hidden-test code ([] = nothing leaks)."""
    folder, secret, leaks = Path(folder), hidden_lines(Path(solutions_dir)), []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        rel = path.relative_to(folder)
        if path.suffix == ".ipynb":
            try:
                sources = [c.source for c in read_notebook(path).cells]
            except ValueError:
                sources = [text]
            for source in sources:
                for line in source.splitlines():
                    if any(m.match(line) for m in (*_HIDDEN, *_SOLUTION)):
                        leaks.append(f"{rel}: a '{line.strip()}' marker")
        found = [line for line in secret if line in text]
        if found:
            leaks.append(f"{rel}: hidden-test code ({found[0][:60]!r} and {len(found) - 1} more)")
    return leaks


def release(out_dir: str | Path, repo: str | Path = ".", solutions_dir: str | Path = "solutions") -> list[Path]:
    """Write the learner's copy of ``repo`` into ``out_dir`` (a new or empty folder); return the
    files written. Raises :class:`CourseError` when something would leak (nothing is left then)."""
    repo, out = Path(repo).resolve(), Path(out_dir)
    solutions = repo / solutions_dir if not Path(solutions_dir).is_absolute() else Path(solutions_dir)
    if out.exists() and any(out.iterdir()):
        raise CourseError(f"{out} is not empty: give a new folder for the learner's copy.")
    if out.resolve().is_relative_to(repo):
        raise CourseError(f"{out} is inside the repository: give a folder outside it (e.g. ../course-release).")
    build_exercises(solutions, repo / "exercises")
    written = []
    for path in _files(repo):
        rel = path.relative_to(repo)
        if rel.parts[0] in PRIVATE:
            continue
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        written.append(target)
    leaks = find_leaks(out, solutions)
    if leaks:
        shutil.rmtree(out)
        raise CourseError("The learner's copy would leak hidden tests or solutions, so nothing was released:\n  "
                          + "\n  ".join(leaks[:20]))
    return written
