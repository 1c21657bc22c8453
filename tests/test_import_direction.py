"""The checks a learner's notebook calls work without torch; the layer contracts themselves are
checked by `lint-imports` (pyproject.toml, run by `make test`)."""

import subprocess
import sys
import textwrap

BLOCK_TORCH = textwrap.dedent("""
    import importlib.abc, sys

    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"torch", "transformers", "datasets"}:
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, NoTorch())
""")


def run_without_torch(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120)


def test_checks_import_and_work_with_torch_blocked():
    done = run_without_torch("""
        from tutorlib.course.checks import AnswerError, check_close, check_equal
        check_equal("answer", 3, 3)
        check_close("ratio", 0.6667, 2 / 3, rtol=1e-3)
        try:
            check_equal("answer", 4, 3)
        except AnswerError as err:
            print("refused:", str(err).splitlines()[0])
        from tutorlib import check_true  # the public surface does not drag torch in either
        check_true("fine", True, "it holds")
        assert not any(m.split(".")[0] == "torch" for m in sys.modules)
    """)
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout


def test_the_block_really_blocks_torch():
    done = run_without_torch("import tutorlib.methods.full")
    assert done.returncode != 0 and "blocked in this test" in done.stderr
