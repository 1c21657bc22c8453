"""Tamper evidence: what a learner may not change in an exercise, and code that reaches for the grader.

Two kinds of evidence, both reported as *flagged for review* (the grader withholds the notebook's
points until the teacher accepts them in an overrides file, see :mod:`tutorlib.course.gradebook`):

* **Given cells.** Every cell the learner did not have to write (instructions, setup code, the
  visible tests) has a sha256 recorded at build time (``metadata.tutorlib.given_sha256`` of the
  exercise, cell id -> hash). The teacher's grader recomputes them from the private solution, so
  editing the metadata too does not help; an edited, deleted or moved given cell is named.
* **Grader machinery in an answer.** :func:`reaches_for_the_grader` reads an answer cell's syntax
  tree for the handles a learner would need to switch a check off: IPython's input/AST
  transformers, ``builtins``, ``sys.modules``, frames and code objects, ``gc``/``ctypes``,
  ``exec``/``eval``/``__import__``, exiting the process, threads and signals, the kit's
  ``tutorlib.course`` package. A learner rarely needs any of these for an answer; a teacher
  reviewing the cell decides.
"""

from __future__ import annotations

import ast
import hashlib
import re

# Attribute or variable names that only code aimed at the grader needs.
_SUSPECT_NAMES = {
    "get_ipython": "IPython's shell", "input_transformers_cleanup": "IPython's input transformers",
    "input_transformers_post": "IPython's input transformers", "ast_transformers": "IPython's AST transformers",
    "builtins": "the builtins module", "__builtins__": "the builtins", "modules": "sys.modules",
    "meta_path": "the import machinery", "path_hooks": "the import machinery", "_getframe": "stack frames",
    "currentframe": "stack frames", "f_globals": "stack frames", "f_locals": "stack frames", "f_back": "stack frames",
    "tb_frame": "stack frames", "__code__": "a function's code object", "__globals__": "a function's globals",
    "__closure__": "a function's closure", "cell_contents": "a function's closure", "__wrapped__": "a wrapped function",
    "settrace": "a trace hook", "setprofile": "a profile hook", "_exit": "exiting the process",
    "exit": "exiting the process", "quit": "exiting the process", "abort": "exiting the process",
    "kill": "signals", "signal": "signals", "setitimer": "signals", "atexit": "exit hooks",
    "gc": "the garbage collector's object list", "ctypes": "raw memory", "threading": "threads",
    "_thread": "threads", "multiprocessing": "other processes", "subprocess": "other processes",
    "system": "shell commands", "fdopen": "raw file descriptors", "dup2": "raw file descriptors",
    "importlib": "the import machinery", "checker": "the grader", "autograde": "the grader",
}
_SUSPECT_CALLS = {"exec", "eval", "compile", "__import__", "setattr", "delattr", "globals", "vars", "breakpoint"}
_SUSPECT_MODULES = re.compile(r"^(tutorlib\.course|builtins|ctypes|gc|importlib|IPython|ipykernel|signal|"
                              r"threading|_thread|multiprocessing|subprocess|atexit|inspect)\b")


def reaches_for_the_grader(source: str) -> list[str]:
    """What in this (plain Python) answer code touches the grader's machinery, one line each.
    [] for ordinary code, and for code that does not parse (that fails on its own)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # too deep to read: it fails on its own
        return []
    found: dict[str, None] = {}  # each line once, in order (a dict: a learner's 100,000 lines stay linear)
    for node in ast.walk(tree):
        what = None
        if isinstance(node, ast.Attribute) and node.attr in _SUSPECT_NAMES:
            what = f"`.{node.attr}` ({_SUSPECT_NAMES[node.attr]})"
        elif isinstance(node, ast.Name) and node.id in _SUSPECT_NAMES:
            what = f"`{node.id}` ({_SUSPECT_NAMES[node.id]})"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _SUSPECT_CALLS:
            what = f"`{node.func.id}(...)`"
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            hits = [n for n in names if _SUSPECT_MODULES.match(n)]
            # inspect.getsource is harmless; `import inspect` is flagged only with frames (above).
            hits = [n for n in hits if n != "inspect"]
            what = f"`import {hits[0]}`" if hits else None
        if what:
            found[f"line {getattr(node, 'lineno', 0)}: {what}"] = None
    return list(found)


def cell_sha256(source: str) -> str:
    """The checksum of a given cell: its source with trailing spaces and blank edges ignored."""
    text = "\n".join(line.rstrip() for line in source.strip().splitlines())
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
