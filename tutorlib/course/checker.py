"""Hygiene inside the learner's kernel (:mod:`tutorlib.course.kernel`): what keeps an honest
notebook's later cells working as they would in Jupyter, and produces flags for the teacher.

* :class:`Snapshot`: the attributes of the kit's modules, numpy, torch and the builtins after the
  last given cell; anything an answer changes is put back and reported as a flag.
* :func:`block_kit_helpers`: the kit functions an assignment asks the learner to write themselves
  (``metadata.tutorlib.not_in_answers``) raise when an answer calls them; an answer that *is* one
  of them (an alias, a ``partial``) is found by :func:`kit_function_inside`.
* :func:`python_source`: a cell's IPython syntax as plain Python (run by the grader, outside).

None of this decides a grade: it runs in the learner's own process, which the learner controls.
The grade is computed outside the sandbox from plain data (``THREAT_MODEL.md``).
"""

from __future__ import annotations

import builtins
import sys
import traceback
import types
from pathlib import Path

# Modules whose attributes a learner's code must not change (plus every loaded tutorlib module).
WATCHED_MODULES = ("builtins", "math", "statistics", "inspect", "time", "numpy", "numpy.linalg", "torch",
                   "torch.nn", "torch.nn.functional", "collections", "itertools", "functools", "json", "sys")
WATCHED_CLASSES = (("torch", "Tensor"), ("numpy", "ndarray"))
CHECK_NAMES = ("AnswerError", "check_equal", "check_close", "check_tensor", "check_true", "check_finite")
SYS_NAMES_WATCHED = ("settrace", "setprofile", "exit", "modules", "meta_path", "path_hooks", "stdout", "stderr")


def _fingerprint(value) -> tuple:
    """Identity of a value and, for a function, of its code and defaults (mutable in place)."""
    if isinstance(value, types.FunctionType):
        return (id(value), id(value.__code__), id(value.__defaults__), id(value.__kwdefaults__))
    return (id(value),)


def _public_value(name: str):
    """What ``tutorlib.<name>`` resolves to, from the kit's own table (None: not a public name)."""
    import importlib

    import tutorlib

    home = tutorlib.home_of(name)
    if home is None:
        return None
    module = importlib.import_module(home)
    return getattr(module, name, module)  # a public module (``tutorlib.sentiment``) is its own value


class Snapshot:
    """References to the watched modules' functions, classes and submodules (and every builtin),
    so that a change made by a learner's code can be seen and undone."""

    def __init__(self):
        self.entries: dict[tuple[str, str], tuple[object, object, tuple]] = {}  # -> (owner, value, state)
        self.modules = {name: module for name, module in self._watched()}
        self.meta_path = list(sys.meta_path)
        owners = list(self.modules.items())
        for mod, cls in WATCHED_CLASSES:
            klass = getattr(sys.modules.get(mod), cls, None)
            if klass is not None:
                owners.append((f"{mod}.{cls}", klass))
        for label, owner in owners:
            for attr, value in list(vars(owner).items()):
                if label == "sys" and attr not in SYS_NAMES_WATCHED:
                    continue  # sys changes by itself (sys.last_value, ...): only its hooks are watched
                if label == "builtins" or callable(value) or isinstance(value, (types.ModuleType, property)):
                    state = (value.__code__, value.__defaults__, value.__kwdefaults__) \
                        if isinstance(value, types.FunctionType) else ()
                    self.entries[(label, attr)] = (owner, value, state, _fingerprint(value))

    @staticmethod
    def _watched():
        names = [n for n in list(sys.modules) if n == "tutorlib" or n.startswith("tutorlib.")] + list(WATCHED_MODULES)
        for name in names:
            module = sys.modules.get(name)
            if isinstance(module, types.ModuleType):
                yield name, module

    def restore_changes(self) -> list[str]:
        """Put back every watched attribute that changed; return what changed, in words."""
        changed = []
        for name, module in self.modules.items():
            if sys.modules.get(name) is not module:
                sys.modules[name] = module
                changed.append(f"sys.modules[{name!r}] was replaced")
        if sys.meta_path != self.meta_path:
            sys.meta_path[:] = self.meta_path
            changed.append("sys.meta_path (the import machinery) was changed")
        if sys.gettrace() is not None or sys.getprofile() is not None:
            sys.settrace(None)
            sys.setprofile(None)
            changed.append("a trace or profile hook was installed")
        for (label, attr), (owner, value, state, print_) in self.entries.items():
            now = vars(owner).get(attr, _MISSING)
            if now is _MISSING or _fingerprint(now) != print_:
                if state:  # a function changed in place: give it its code back
                    value.__code__, value.__defaults__, value.__kwdefaults__ = state
                try:
                    setattr(owner, attr, value)
                except (AttributeError, TypeError):
                    pass
                changed.append(f"{label}.{attr} was changed")
        for attr in [a for a in vars(builtins) if ("builtins", a) not in self.entries]:
            delattr(builtins, attr)
            changed.append(f"builtins.{attr} was added")
        package = sys.modules.get("tutorlib")
        for attr, value in list(vars(package).items()) if package else []:
            if ("tutorlib", attr) not in self.entries and not attr.startswith("_") \
                    and (callable(value) or isinstance(value, types.ModuleType)) and value is not _public_value(attr) \
                    and not _is_kit_submodule(attr, value):
                delattr(package, attr)
                changed.append(f"tutorlib.{attr} was set to something else than the kit's own")
        return changed


_MISSING = object()


def _is_kit_submodule(attr: str, value) -> bool:
    """True when ``tutorlib.<attr>`` is the kit's own submodule, which Python sets on the package the
    first time anything imports it (e.g. ``tutorlib.files`` when a kit function first needs it)."""
    import tutorlib

    home = Path(tutorlib.__file__).resolve().parent
    file = getattr(value, "__file__", None) if isinstance(value, types.ModuleType) else None
    return (file is not None and sys.modules.get(f"tutorlib.{attr}") is value
            and getattr(value, "__name__", "") == f"tutorlib.{attr}" and Path(file).resolve().is_relative_to(home))


def _guard(real, label: str, flags: list):
    """A stand-in for a kit function an answer must not call: it works for the given cells, the
    tests and the kit itself, and raises when it is called straight from an answer's code."""

    def guarded(*args, **kwargs):
        caller = sys._getframe(1).f_code.co_filename
        if caller.startswith("<answer"):
            flags.append(f"{caller[1:-1]} calls the kit's {label}")
            raise _checks().AnswerError(
                f"your answer calls the kit's {label}: this question asks you to write it yourself.")
        return real(*args, **kwargs)

    guarded.__name__, guarded.__qualname__, guarded.__doc__ = real.__name__, real.__qualname__, real.__doc__
    guarded._tutorlib_guarded = label  # noqa: SLF001 - how an answer that *is* a kit function is recognised
    return guarded


def kit_function_inside(value, depth: int = 0) -> str | None:
    """The label of a guarded kit function that ``value`` is, or wraps without code of its own
    (``functools.partial``, a bound method, ``__wrapped__``): such an answer is the kit's, not the
    learner's. None otherwise."""
    if depth > 5 or value is None:
        return None
    label = getattr(value, "_tutorlib_guarded", None) if isinstance(value, types.FunctionType) else None
    if label:
        return label
    for attr in ("func", "__func__", "__wrapped__"):
        inner = getattr(value, attr, None) if not isinstance(value, types.ModuleType) else None
        if inner is not None and inner is not value:
            found = kit_function_inside(inner, depth + 1)
            if found:
                return found
    return None


def refusal(name: str, label: str):
    def refused(*args, **kwargs):
        raise _checks().AnswerError(f"`{name}` is the kit's {label}: this question asks you to write it yourself.")
    return refused


def _checks():
    import tutorlib.course.checks as checks
    return checks


def block_kit_helpers(spec: list[str], flags: list) -> None:
    """Replace each ``module:function`` by a guard (see :func:`_guard`); a bare ``module`` guards
    every function it defines and every method of its classes. The guard replaces the function in
    every loaded module that holds it (``from x import f`` made copies of the reference)."""
    import importlib

    originals = {}
    for entry in spec:
        module_name, _, attr = entry.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        short = module_name.split(".")[-1]
        if attr:
            real = getattr(module, attr, None)
            if isinstance(real, types.FunctionType):
                originals[id(real)] = (real, _guard(real, f"{short}.{attr}", flags))
            continue
        for name, value in list(vars(module).items()):
            if isinstance(value, types.FunctionType) and value.__module__ == module_name:
                originals[id(value)] = (value, _guard(value, f"{short}.{name}", flags))
            elif isinstance(value, type) and value.__module__ == module_name:
                for method, function in list(vars(value).items()):
                    if isinstance(function, types.FunctionType) and \
                            (method == "__init__" or not method.startswith("__")):
                        setattr(value, method, _guard(function, f"{short}.{name}.{method}", flags))
    for module in list(sys.modules.values()):  # `from x import f` copies: replace those too
        if not isinstance(module, types.ModuleType):
            continue
        for name, value in list(vars(module).items()):
            if id(value) in originals and originals[id(value)][0] is value:
                try:
                    setattr(module, name, originals[id(value)][1])
                except (AttributeError, TypeError):
                    pass


class Stub:
    """``get_ipython()`` for cells run outside IPython: magics and shell commands are skipped."""

    def run_line_magic(self, *args, **kwargs):
        return None

    run_cell_magic = system = getoutput = run_line_magic


def error_summary(error: BaseException) -> tuple[str, str, list[str]]:
    lines = traceback.format_exception(type(error), error, error.__traceback__)
    # Keep the learner's frames (cells) only: the grader's own frames say nothing to a learner.
    shown = [ln for ln in lines if "tutorlib/course/checker.py" not in ln]
    return type(error).__name__, str(error), shown[-6:]


def python_source(cell_source: str) -> str:
    """A cell's IPython source (``%magic``, ``!cmd``) as plain Python; run by the parent."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return TransformerManager().transform_cell(cell_source)
    except (SyntaxError, ValueError, IndexError, RecursionError, MemoryError):
        return cell_source
