"""A notebook's Colab install cell, run for real in a fresh virtual environment.

Colab is played by a new venv that already has torch (Colab ships its own) and a fake ``google.colab``
module; the cell's ``%pip install`` runs with the git URL replaced by this checkout and the lock URL by
``requirements/colab.txt``. The cell must install the kit, fetch (here: verify the cached) models and
data, say that no restart is needed, and the installed kit must find the reference results the lessons
read without a clone. About a minute: packages come from uv's cache.
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
URLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
TORCH_WHEELS = Path(os.environ.get("PIP_FIND_LINKS") or "/opt/wheels")


def uv() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert found, "uv is installed with the kit's test environment (scripts/venv.sh)"
    return found


def colab_like_venv(folder: Path) -> Path:
    """A new venv with the torch build Colab would already have (here the CPU build this checkout tests)."""
    subprocess.run([uv(), "venv", "-q", "--python", sys.executable, str(folder)], check=True)
    python = folder / "bin" / "python"
    import torch

    torch_version = torch.__version__.split("+")[0]
    source = (["--find-links", str(TORCH_WHEELS)] if any(TORCH_WHEELS.glob(f"torch-{torch_version}*"))
              else ["--index-url", "https://download.pytorch.org/whl/cpu"])
    subprocess.run([uv(), "pip", "install", "-q", "--python", str(python), *source, f"torch=={torch_version}"],
                   check=True, timeout=600)
    return python


def cell_as_script(source: str, python: Path) -> str:
    """The cell's code as a plain script: ``%pip install ARGS`` -> uv into ``python``, URLs -> this checkout."""
    lines = []
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("%pip install"):
            args = shlex.split(stripped[len("%pip install"):])
            args = [a.replace(URLS["Lock"], str(ROOT / "requirements" / "colab.txt"))
                     .replace(URLS["Install"], ROOT.as_uri()) for a in args if a != "-q"]
            indent = line[:len(line) - len(line.lstrip())]
            command = [uv(), "pip", "install", "-q", "--python", str(python), *args]
            lines.append(f"{indent}import subprocess; subprocess.run({command!r}, check=True)")
        else:
            lines.append(line)
    return "\n".join(lines)


@pytest.mark.real
def test_the_colab_cell_installs_the_kit_in_a_fresh_environment(tmp_path):
    cell = json.loads((ROOT / "notebooks" / "05_efficiency.ipynb").read_text())["cells"][1]
    source = "".join(cell["source"])
    assert "%pip install" in source and URLS["Install"] in source
    python = colab_like_venv(tmp_path / "colab")
    fake_colab = textwrap.dedent("""
        import importlib.machinery, sys, types
        for name in ("google", "google.colab"):  # what `import google.colab` leaves in a Colab kernel
            module = types.ModuleType(name)
            module.__spec__ = importlib.machinery.ModuleSpec(name, None)
            sys.modules[name] = module
    """)
    check = textwrap.dedent("""
        from tutorlib.experiments.reference import reference_results_folder, reference_results
        print("results from", reference_results_folder())
        print("found", sorted(reference_results()))
    """)
    env = {**os.environ, "TUTORLIB_OFFLINE": "1", "PYTHONPATH": ""}  # the cache is filled; no network needed
    done = subprocess.run([str(python), "-c", fake_colab + cell_as_script(source, python) + "\n" + check],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "no restart needed" in done.stdout
    assert "reference_results" in done.stdout.split("results from", 1)[1].splitlines()[0]  # packaged, not a clone
    assert "'sentiment'" in done.stdout and "'summarise-nyt-leads'" in done.stdout
