"""requirements/lock.txt: the CPU environment only, installable by pip alone (`pip install -r`).

The offline install from a wheelhouse is checked by `make wheelhouse` itself (it installs a fresh
environment from the folder with the network off and runs `tutorlib doctor`); it downloads ~430 MiB, so it
is not a test.
"""

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"
# What PyPI's Linux torch pulls in and the CPU build never loads (about 2 GB). nvidia-ml-py is not one of
# them: codecarbon's NVML bindings, pure Python, 0.1 MiB.
CUDA = re.compile(r"^(nvidia-(?!ml-py)|triton|cuda-)", re.IGNORECASE)


def pins() -> list[str]:
    return [line for line in LOCK.read_text().splitlines() if line and not line.startswith(("#", " ", "-"))]


def test_the_lock_holds_no_cuda_package():
    cuda = [line for line in pins() if CUDA.match(line)]
    assert not cuda, f"CUDA packages in {LOCK.name}: {cuda}. Rewrite it with scripts/lock.sh from a CPU .venv."


def test_torch_is_the_cpu_build_from_the_index_the_lock_names():
    torch = [line for line in pins() if line.startswith("torch==")]
    assert any(re.match(r"torch==[\d.]+\+cpu ; sys_platform != 'darwin'$", t) for t in torch), torch
    assert any(re.match(r"torch==[\d.]+ ; sys_platform == 'darwin'$", t) for t in torch), torch  # CPU-only there
    options = [line for line in LOCK.read_text().splitlines() if line.startswith("-")]
    assert options == ["--extra-index-url https://download.pytorch.org/whl/cpu"]  # where pip finds X+cpu


def test_every_runtime_dependency_is_pinned():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = {line.split("==")[0].lower() for line in pins()}
    wanted = {re.split(r"[<>=!~ \[;]", d)[0].lower() for d in project["dependencies"]}
    assert wanted <= pinned, f"not in {LOCK.name}: {sorted(wanted - pinned)}; run scripts/lock.sh"


def test_the_environment_holds_compiled_bytecode():
    """scripts/venv.sh installs with --compile-bytecode: each new process (a lesson's kernel, a graded
    notebook's kernel in its read-only sandbox, a test's subprocess) then imports torch and transformers in
    about 0.4x the time of compiling them from source (bench/speed.py --only startup)."""
    import importlib.util
    import sys

    import torch
    import transformers

    if not (Path(sys.prefix) / ".tutorlib-installed").exists():
        import pytest

        pytest.skip("not the environment scripts/venv.sh made (it is the one make test uses)")
    for module in (torch, transformers):
        compiled = Path(importlib.util.cache_from_source(module.__file__))
        assert compiled.exists(), f"{compiled} is missing: run scripts/venv.sh (it compiles the environment once)"
