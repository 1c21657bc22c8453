"""The learner's copy of the course: everything a learner needs, no solution and no hidden test.

``tutorlib release OUT`` (teacher side) copies the repository's tracked files into ``OUT`` except
the teacher's private material: ``solutions/`` (every answer and hidden test) and ``tests/`` (the
grader's own fixtures hold solved notebooks and hidden tests too). The exercises are rebuilt from
the solutions first, so they are current. Then :func:`find_leaks` reads every copied file for a
solution or hidden-test marker in a notebook and for hidden-test code (any three consecutive lines); a leak stops
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
MIN_SECRET_LINE = 25  # three short lines ("else:", "pass", ...) are not a secret


def _files(repo: Path) -> list[Path]:
    """The repository's tracked files (git), or every file outside the skipped folders."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=repo, capture_output=True, check=True).stdout
        paths = [repo / p for p in out.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        paths = [p for p in repo.rglob("*") if p.is_file()]
    return [p for p in paths if p.is_file() and not _SKIP_PARTS & set(p.relative_to(repo).parts)]


def _windows(lines) -> set[tuple[str, ...]]:
    """Every run of three consecutive non-blank lines (stripped; imports left out): three lines of
    hidden-test code side by side are telling; one line alone ("optimizer.step()") is not."""
    kept = [line.strip() for line in lines if line.strip() and not line.strip().startswith(("import ", "from "))]
    return {w for w in zip(kept, kept[1:], kept[2:]) if max(map(len, w)) >= MIN_SECRET_LINE}


def hidden_code(solutions_dir: Path, lessons_dir: Path | None = None) -> set[tuple[str, ...]]:
    """The hidden tests' code as runs of three consecutive lines that neither the built exercises
    nor the lessons (``lessons_dir``, code a learner reads anyway) show."""
    from tutorlib.course.builder import make_exercise

    secret: set[tuple[str, ...]] = set()
    public: set[tuple[str, ...]] = set()
    for path in sorted(lessons_dir.glob("*.ipynb")) if lessons_dir is not None and lessons_dir.is_dir() else []:
        for cell in read_notebook(path).cells:
            public |= _windows(cell.source.splitlines())
    for path in sorted(solutions_dir.rglob("*.ipynb")):
        nb = read_notebook(path)
        for cell in make_exercise(nb).cells:
            public |= _windows(cell.source.splitlines())
        for cell in nb.cells:
            inside, block = False, []
            for line in cell.source.splitlines():
                if _HIDDEN[0].match(line):
                    inside, block = True, []
                elif _HIDDEN[1].match(line):
                    inside = False
                    secret |= _windows(block)
                elif inside:
                    block.append(line)
    return secret - public


def _sources(path: Path, text: str) -> list[str]:
    if path.suffix == ".ipynb":
        try:
            return [c.source for c in read_notebook(path).cells]
        except ValueError:
            pass
    return [text]


def find_leaks(folder: str | Path, solutions_dir: str | Path, lessons_dir: str | Path | None = None) -> list[str]:
    """'file: what' for every solution/hidden-test marker in a notebook under ``folder`` and every
    file holding hidden-test code ([] = nothing leaks); code that the lessons in ``lessons_dir``
    (the teacher's repository) show is not a secret."""
    folder, leaks = Path(folder), []
    secret = hidden_code(Path(solutions_dir), Path(lessons_dir) if lessons_dir is not None else None)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        rel, sources = path.relative_to(folder), _sources(path, text)
        if path.suffix == ".ipynb":
            for line in (ln for source in sources for ln in source.splitlines()):
                if any(m.match(line) for m in (*_HIDDEN, *_SOLUTION)):
                    leaks.append(f"{rel}: a '{line.strip()}' marker")
        found = set().union(*(_windows(source.splitlines()) for source in sources)) & secret
        if found:
            leaks.append(f"{rel}: hidden-test code ({sorted(found)[0][0][:60]!r}, {len(found)} runs of 3 lines)")
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
    leaks = find_leaks(out, solutions, repo / "notebooks")
    if leaks:
        shutil.rmtree(out)
        raise CourseError("The learner's copy would leak hidden tests or solutions, so nothing was released:\n  "
                          + "\n  ".join(leaks[:20]))
    return written
