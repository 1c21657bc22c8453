"""The red team: a class where some learners attack the grader, graded by the real `grade_class`.

Every attack below is a learner folder in one class, beside honest learners and bystanders. After
the class is graded (in sandboxes, two learners at a time), each attack must score 0 where it
cheats (or be flagged, points withheld), and for every attack at once: no byte changed in the
solutions, the kit, the bystanders' folders or the output folder after grading ended, no process
left behind, and a complete gradebook. The attacks are kinds, not one trick each: the sandbox and
the verdict outside it are what must hold, not a list of blocked names.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import threading
import time
from pathlib import Path

import psutil
import pytest
from learner_copies import learner_copy

from tutorlib.course.builder import read_notebook, split_hidden
from tutorlib.course.gradebook import grade_class
from tutorlib.course.sandbox import SandboxUnavailable, check_sandbox

FIXTURES = Path(__file__).parent / "notebooks"
TOY = FIXTURES / "solutions" / "toy_prefix.ipynb"
EXERCISE = FIXTURES / "exercises" / "toy_prefix.ipynb"
REPO = Path(__file__).parents[1]
# One class is graded once for the whole file (module fixture): on a busy 2-core machine that takes minutes.
pytestmark = pytest.mark.timeout(2400)
KIT = REPO / "tutorlib"
MARK = "tutorlib-redteam-leftover"  # in the command line of every process an attack tries to leave behind

WRONG = {  # wrong answers for every toy question: an attack must not turn them into points
    "q1_answer": "def prefix_params(n_layers, prefix_len, d_model):\n    return 48",  # passes the visible check only
    "q2_answer": "def trained_fraction(trainable, total):\n    return 0.25",
    "q3_answer": "def mean_loss(losses):\n    return 1.5",
    "q4_answer": "def prefix_bytes(n_params):\n    return 0",
}
# The right answers, which an attack defines only if it managed to read a solution.
RIGHT = {
    "q1_answer": "def prefix_params(n_layers, prefix_len, d_model):\n    return 2 * n_layers * prefix_len * d_model",
    "q2_answer": "def trained_fraction(trainable, total):\n    return trainable / total",
    "q3_answer": "def mean_loss(losses):\n    return sum(losses) / len(losses)",
    "q4_answer": "def prefix_bytes(n_params):\n    return 4 * n_params",
}
# OSC 52 (writes the clipboard), a screen clear, a carriage return before a forged row, a right-to-left override,
# a C1 control (CSI in some terminals), a backspace and a bell.
ACTING_TEXT = "\x1b]52;c;b3duZWQ=\x07\x1b[2J\r| honest | 7 | 7 |\u202edetirw\x9b31m\x08\x07"
# Attacks that also answer a later question their own way (the others answer WRONG there).
LATER_ANSWERS = {"terminal-escapes": {
    "q2_answer": f"def trained_fraction(trainable, total):\n    return {ACTING_TEXT!r}"}}


def _attacks(paths: dict) -> dict[str, str]:
    """learner folder -> the code of its first answer cell (the other answers are WRONG)."""
    solutions, classmate, out, kit = paths["solutions"], paths["classmate"], paths["out"], paths["kit"]
    host_marker, port = paths["host_marker"], paths["port"]
    leftover = (f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time\\nwhile True: "
                f"time.sleep(0.2)', '{MARK}'], start_new_session=True)\n")
    return {
        # Frames, the garbage collector, the kernel's own objects: whatever it changes lives in its process.
        "frames-and-gc": "import gc, inspect, sys\n"
                         "for frame in inspect.stack():\n    frame.frame.f_globals.setdefault('steps', [])\n"
                         "for obj in gc.get_objects():\n"
                         "    if isinstance(obj, dict) and 'source' in obj:\n        obj['source'] = 'pass'\n"
                         "    if callable(obj) and getattr(obj, '__name__', '') in ('check_equal', 'check_close'):\n"
                         "        try:\n            obj.__code__ = (lambda *a, **k: None).__code__\n"
                         "        except Exception:\n            pass\n" + WRONG["q1_answer"],
        # The kernel's replies forged: every question answered "ok", with a value it hopes will do.
        "forged-replies": "import tutorlib.course.kernel as k\n"
                          "k.Kernel.probe = lambda self, request: True\n"
                          "import os, json\nfor fd in range(3, 64):\n    try:\n"
                          "        os.write(fd, (json.dumps({'ok': True, 'value': 1, 'status': 'passed'})"
                          " + '\\n').encode())\n"
                          "    except OSError:\n        pass\n" + WRONG["q1_answer"],
        # Reading the private solutions: by path, through /proc, by searching the disk.
        "read-solutions": "import os, glob, json\nfound = None\n"
                          f"for path in [{str(solutions / 'toy_prefix.ipynb')!r}] + glob.glob('/**/toy_prefix.ipynb', "
                          "recursive=True)[:50]:\n"
                          "    try:\n        text = open(path).read()\n    except OSError:\n        continue\n"
                          "    if 'BEGIN SOLUTION' in text:\n        found = text\n"
                          "for pid in os.listdir('/proc'):\n    try:\n"
                          "        found = found or ('BEGIN SOLUTION' in open(f'/proc/{pid}/cmdline').read() and 'x')\n"
                          "    except OSError:\n        pass\n"
                          f"if found:\n    exec({RIGHT['q1_answer']!r})\nelse:\n    exec({WRONG['q1_answer']!r})\n",
        # Writing where it must not: a classmate's notebook, the solutions, the kit, the output, the host's /tmp.
        "write-everywhere": "import os\nfor path in [" + ", ".join(repr(str(p)) for p in [
            classmate, solutions / "toy_prefix.ipynb", kit / "course" / "checks.py", out / "gradebook.csv",
            host_marker]) + "]:\n"
                            "    try:\n        os.chmod(path, 0o666)\n    except OSError:\n        pass\n"
                            "    try:\n        open(path, 'w').write('{}')\n    except OSError:\n        pass\n"
                            + WRONG["q1_answer"],
        # Processes left behind to change things after the class ends (or to hold the result channel open).
        "leave-a-process": leftover + "import os\nif os.fork() == 0:\n    os.setsid()\n"
                                      "    import time\n    while True:\n"
                                      "        time.sleep(0.2)\n"
                                      f"        open({str(out / 'report.md')!r}, 'w').write('x')\n"
                           + WRONG["q1_answer"],
        # Killing every process it may signal (without a PID namespace: the grader, the class).
        "kill-everything": "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\n"
                           + WRONG["q1_answer"],
        # Resources: memory, a huge file, many processes, a loop that ignores the alarm.
        "memory-hog": "blocks = [b'\\x01' * (256 * 2**20) for _ in range(40)]\n" + WRONG["q1_answer"],
        "disk-hog": "with open('/tmp/big', 'wb') as f:\n    for _ in range(1024):\n        f.write(b'x' * 2**20)\n"
                    + WRONG["q1_answer"],
        "fork-bomb": "import os, time\nkids = []\nfor _ in range(300):\n    try:\n        pid = os.fork()\n"
                     "    except OSError:\n        break\n"
                     "    if pid == 0:\n        time.sleep(30)\n        os._exit(0)\n"
                     "    kids.append(pid)\n" + WRONG["q1_answer"],
        "endless-loop": "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nsignal.signal(signal.SIGINT, "
                        "signal.SIG_IGN)\nwhile True:\n    pass\n",
        # The network: a server on this machine's loopback must hear nothing.
        "network": "import socket\ntry:\n"
                   f"    socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'x')\n"
                   "except OSError:\n    pass\n" + WRONG["q1_answer"],
        # A value the grader must not take: too large, or an object of the learner's own class.
        "huge-and-tricky-values": "class Anything:\n    def __eq__(self, other):\n        return True\n"
                                  "    __hash__ = None\n"
                                  "def prefix_params(*args):\n    return Anything()\n"
                                  "def prefix_bytes(n):\n    return list(range(3 * 10**6))\n",
        # An answer too deep for the parser.
        "deep-expression": "x = " + "+".join(["1"] * 20000) + "\n" + WRONG["q1_answer"],
        # Text that acts on the teacher's terminal or viewer (the grade command prints its report): an error, a
        # printed line and a value carrying escape sequences, carriage returns and a right-to-left override.
        "terminal-escapes": f"import sys\nprint({ACTING_TEXT!r})\nprint({ACTING_TEXT!r}, file=sys.stderr)\n"
                            "def prefix_params(n_layers, prefix_len, d_model):\n"
                            f"    raise ValueError({ACTING_TEXT!r})\n",
    }


def _learner_copy(replace: dict, out: Path, name: str = "toy_prefix.ipynb") -> Path:
    return learner_copy(TOY, replace, out, name)


def _hashes(*roots: Path) -> dict[str, str]:
    found = {}
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _leftovers() -> list[str]:
    left = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(MARK in part for part in proc.info["cmdline"] or []):
                left.append(f"{proc.pid}: {' '.join(proc.info['cmdline'])[:80]}")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return left


class _Listener:
    """A TCP server on loopback that counts connections (an attack must make none)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.5)
        self.port, self.connections, self.stop = self.sock.getsockname()[1], 0, False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
                self.connections += 1
                conn.close()
            except OSError:
                continue


HOSTILE_NAMES = ['=HYPERLINK("http://example.invalid","x")', "a|b\n| forged | 99 | 7 | | | |", "dot.ted", "dot_ted",
                 "+cmd", "@sum(1)", "esc" + ACTING_TEXT]


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """One class with every attack, honest learners and bystanders, graded once (jobs=2)."""
    try:
        check_sandbox()
    except SandboxUnavailable as e:  # the kit's own tests need a machine that can sandbox
        pytest.fail(f"the grader's sandbox is unavailable on this machine: {e}")
    tmp = tmp_path_factory.mktemp("redteam-class")
    solutions, subs, out = tmp / "solutions", tmp / "submissions", tmp / "out"
    solutions.mkdir()
    shutil.copy(TOY, solutions)
    host_marker = tmp / "host-marker"
    listener = _Listener()
    paths = dict(solutions=solutions, out=out, kit=KIT, host_marker=host_marker, port=listener.port,
                 classmate=subs / "bystander-a" / "toy_prefix.ipynb")
    _learner_copy({}, subs / "honest")
    _learner_copy({}, subs / "bystander-a")
    _learner_copy({}, subs / "bystander-b")
    (subs / "empty").mkdir(parents=True)
    shutil.copy(EXERCISE, subs / "empty")
    attacks = _attacks(paths)
    for name, code in attacks.items():
        _learner_copy({**WRONG, "q1_answer": code, **LATER_ANSWERS.get(name, {})}, subs / name)
    # Files that are not what they claim: links to a solution and to a classmate, a JSON bomb, a renamed copy.
    (subs / "link-to-solution").mkdir()
    (subs / "link-to-solution" / "toy_prefix.ipynb").symlink_to(solutions / "toy_prefix.ipynb")
    (subs / "link-to-classmate").mkdir()
    (subs / "link-to-classmate" / "toy_prefix.ipynb").symlink_to(subs / "bystander-b" / "toy_prefix.ipynb")
    (subs / "linked-folder").symlink_to(subs / "bystander-b", target_is_directory=True)
    (subs / "json-bomb").mkdir()
    (subs / "json-bomb" / "toy_prefix.ipynb").write_text('{"cells": ' + "[" * 100_000 + "]" * 100_000 + "}")
    renamed = _learner_copy({}, subs / "renamed", name="my_copy.ipynb")
    data = json.loads(renamed.read_text())
    data["metadata"]["tutorlib"] = {"solution": "toy_prefix.ipynb"}  # the learner's metadata decides nothing
    renamed.write_text(json.dumps(data))
    for i, name in enumerate(HOSTILE_NAMES):
        _learner_copy({} if i % 2 == 0 else WRONG, subs / name)
    protected = _hashes(solutions, KIT, subs / "bystander-a", subs / "bystander-b", subs / "honest")
    started = time.monotonic()
    learners = grade_class(subs, solutions, out, cell_timeout=15, jobs=2)
    seconds = time.monotonic() - started
    out_after = _hashes(out)
    time.sleep(3)  # a process left behind would write now
    listener.stop = True
    return dict(learners={e.folder or e.learner: e for e in learners}, attacks=attacks, out=out, subs=subs,
                protected=protected, protected_after=_hashes(solutions, KIT, subs / "bystander-a",
                                                              subs / "bystander-b", subs / "honest"),
                out_after=out_after, out_later=_hashes(out), leftovers=_leftovers(), listener=listener,
                host_marker=host_marker, seconds=seconds, solutions=solutions)


def _points(graded, folder):
    entry = graded["learners"][folder]
    return entry.total, {q.grade_id: q for nb in entry.report.notebooks for q in nb.questions}


def test_honest_learners_score_full_marks_and_the_empty_exercise_zero(graded_class):
    for folder in ("honest", "bystander-a", "bystander-b", "dot.ted", "+cmd"):
        total, questions = _points(graded_class, folder)
        assert total == 7, (folder, {g: q.message for g, q in questions.items()})
        assert graded_class["learners"][folder].report.notebooks[0].flags == []
    assert _points(graded_class, "empty")[0] == 0


@pytest.mark.parametrize("attack", ["frames-and-gc", "forged-replies", "read-solutions", "write-everywhere",
                                    "leave-a-process", "kill-everything", "memory-hog", "disk-hog", "fork-bomb",
                                    "endless-loop", "network", "huge-and-tricky-values", "deep-expression",
                                    "terminal-escapes"])
def test_every_attack_scores_zero_where_it_cheats(graded_class, attack):
    total, questions = _points(graded_class, attack)
    print(attack, {g: (q.points, q.message[:120]) for g, q in questions.items()})
    assert questions["q1_prefix_params"].points == 0  # the question it attacked from
    assert total == 0  # and every other answer is wrong: nothing it did turned into points


def test_nothing_outside_the_sandboxes_changed_and_nothing_is_left_running(graded_class):
    assert graded_class["protected_after"] == graded_class["protected"]  # solutions, kit, classmates
    assert graded_class["out_later"] == graded_class["out_after"]  # nobody writes after the class ended
    assert graded_class["leftovers"] == []
    assert not graded_class["host_marker"].exists()
    assert graded_class["listener"].connections == 0


def test_files_that_are_not_what_they_claim_score_zero_with_a_reason(graded_class):
    for folder, reason in [("link-to-solution", "symbolic link"), ("link-to-classmate", "symbolic link"),
                           ("json-bomb", "could not")]:
        entry = graded_class["learners"][folder]
        text = " ".join(entry.problems + [n for nb in entry.report.notebooks for n in nb.notes])
        assert entry.total == 0 and reason in text.lower(), (folder, text)
    linked = [e for e in graded_class["learners"].values() if e.folder is None and "linked-folder" in e.learner]
    assert linked and linked[0].total == 0 and "symbolic link" in linked[0].problems[0]
    renamed = graded_class["learners"]["renamed"]
    assert renamed.total == 0 and renamed.missing == ["toy_prefix.ipynb"]
    assert any("my_copy.ipynb is not one of the assignments" in p for p in renamed.problems)


def test_the_gradebook_is_complete_and_safe_to_open(graded_class):
    out, learners = graded_class["out"], graded_class["learners"]
    text = (out / "gradebook.csv").read_text()
    import csv
    import io

    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) == 1 + len(learners)
    for row in rows[1:]:
        assert all(not cell or cell[0] not in "=+-@" for cell in row), row
    report = (out / "report.md").read_text()
    table = [ln for ln in report.splitlines() if ln.startswith("| ") and not ln.startswith("| learner")]
    assert len(table) == len(learners)  # no row forged by a folder name
    assert any(ln.startswith("| a\\|b") for ln in table)  # the folder's "|" escaped, its newline gone
    feedback = sorted((out / "feedback").iterdir())
    assert len(feedback) == len(learners)  # one file per learner: dot.ted and dot_ted do not share one
    assert json.loads((out / "grades.json").read_text()).keys() == {e.learner for e in learners.values()}


def test_nothing_the_grader_writes_or_prints_holds_a_character_a_terminal_would_act_on(graded_class, capsys):
    """Learner text reaches every output (errors, values, folder names): each file shows it printable, and
    grades.json keeps it exact as ASCII escapes. Nothing but printable characters and line breaks anywhere."""
    from tutorlib.course.gradebook import write_gradebook

    out = graded_class["out"]
    acting = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        text = path.read_text(encoding="utf-8")
        found = sorted({f"U+{ord(ch):04X}" for ch in text if not (ch.isprintable() or ch == "\n")})
        if found:
            acting[str(path.relative_to(out))] = found
    assert acting == {}
    feedback = next((out / "feedback").glob("terminal-escapes-*.md")).read_text()
    assert "?\\]52;c;b3duZWQ=?" in feedback  # the error is shown, its escape sequence made visible (and inert)
    stored = json.loads((out / "grades.json").read_text())
    assert "esc" + ACTING_TEXT in stored  # the exact name, for a program
    learners = list(graded_class["learners"].values())
    write_gradebook(learners, [graded_class["solutions"] / "toy_prefix.ipynb"], out.parent / "again")
    print((out.parent / "again" / "report.md").read_text())  # what `tutorlib grade` prints to the terminal
    printed = capsys.readouterr().out
    assert printed and all(ch.isprintable() or ch == "\n" for ch in printed)


def test_feedback_never_shows_hidden_test_source(graded_class):
    hidden_lines = set()
    for cell in read_notebook(graded_class["solutions"] / "toy_prefix.ipynb").cells:
        _, hidden = split_hidden(cell.source) if cell.cell_type == "code" else ("", None)
        hidden_lines |= {ln.strip() for ln in (hidden or "").splitlines() if len(ln.strip()) >= 12}
    assert hidden_lines
    for path in (graded_class["out"] / "feedback").iterdir():
        text = path.read_text()
        leaked = [ln for ln in hidden_lines if ln in text]
        assert not leaked, (path.name, leaked)
    report = (graded_class["out"] / "report.md").read_text()
    assert not [ln for ln in hidden_lines if ln in report]


def test_a_loop_past_its_time_is_stopped_and_the_class_goes_on(graded_class):
    _, questions = _points(graded_class, "endless-loop")
    entry = graded_class["learners"]["endless-loop"]
    notes = " ".join(n for nb in entry.report.notebooks for n in nb.notes)
    assert "time limit" in notes or "timeout" in {q.status for q in questions.values()}
    assert _points(graded_class, "honest")[0] == 7


def test_a_class_survives_an_interrupt_and_keeps_the_learners_already_graded(tmp_path, monkeypatch):
    """Ctrl-C after the first learner: the gradebook on disk holds that learner."""
    import tutorlib.course.gradebook as gradebook

    subs = tmp_path / "subs"
    for name in ("ada", "bob", "cy"):
        _learner_copy({}, subs / name)
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    shutil.copy(TOY, solutions)
    real, calls = gradebook._grade_learner, []

    def grade_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(gradebook, "_grade_learner", grade_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        grade_class(subs, solutions, tmp_path / "out", cell_timeout=15, jobs=1)
    rows = (tmp_path / "out" / "gradebook.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("ada,")


def test_the_unsafe_mode_stamps_every_line(tmp_path):
    from tutorlib.course.autograde import UNSAFE_STAMP, GradingOptions

    subs = tmp_path / "subs"
    _learner_copy({}, subs / "ada")
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    shutil.copy(TOY, solutions)
    out = tmp_path / "out"
    (entry,) = grade_class(subs, solutions, out, options=GradingOptions(cell_timeout=15, unsafe_no_sandbox=True))
    assert entry.total == 7
    assert UNSAFE_STAMP in (out / "gradebook.csv").read_text().splitlines()[1]
    assert "UNSAFE" in (out / "report.md").read_text() and "UNSAFE" in next((out / "feedback").iterdir()).read_text()


def test_a_class_past_its_budget_lists_the_learners_it_did_not_grade(tmp_path):
    subs = tmp_path / "subs"
    for name in ("ada", "bob"):
        _learner_copy({}, subs / name)
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    shutil.copy(TOY, solutions)
    learners = grade_class(subs, solutions, tmp_path / "out", class_budget=1e-9)
    assert [e.total for e in learners] == [0, 0]
    assert all("class's time budget" in e.problems[0] for e in learners)
    assert len((tmp_path / "out" / "gradebook.csv").read_text().splitlines()) == 3
