"""Many processes on one asset cache (a workshop server, a JupyterHub, CI runners): one prepares each
artifact, the others wait and reuse it; a process killed half-way blocks no one and its leftovers are
redone, never trusted.

The fast tests use a fake artifact (a wheel built here, served from a local wheelhouse folder) and child
processes that import only ``tutorlib.loading.assets``. The ``real`` tests run ``tutorlib download --all
--prepare`` itself, four at once, on an empty cache filled from the real artifact files.
"""

import hashlib
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tutorlib.loading import assets
from tutorlib.loading.gguf_convert import MARKER

MEMBER = "fakepkg/model/weights.bin"
PAYLOAD = os.urandom(1 << 22)  # 4 MiB: big enough that a slowed copy is caught half-way

# A child process: registers the fake artifact, logs each real fetch and extraction (one line each, appended
# to LOG), extracts MEMBER and prints its sha256. With SLOW=1 it copies 64 KiB per second: a victim to kill.
CHILD = r"""
import os, shutil, sys, time
from tutorlib.loading import assets

assets.ARTIFACTS["fake"] = assets.Artifact("fake", "fakepkg", "1.0", "fakepkg-1.0-py3-none-any.whl",
                                           os.environ["SHA"], 4.0, "test bytes", "none")
log = os.environ["LOG"]

def logged(step, function):
    def wrapper(*args, **kwargs):
        with open(log, "a") as f:
            f.write(f"{step} {os.getpid()}\n")
        return function(*args, **kwargs)
    return wrapper

assets._verify_into_cache = logged("fetch", assets._verify_into_cache)
assets.zipfile.ZipFile = logged("extract", assets.zipfile.ZipFile)
if os.environ.get("SLOW") == "1":
    def slow_copy(src, dst, length=0):
        while chunk := src.read(1 << 16):
            dst.write(chunk)
            dst.flush()
            time.sleep(1)
    assets.shutil = type(sys)("slow_shutil")
    assets.shutil.copyfileobj, assets.shutil.copyfile = slow_copy, shutil.copyfile
print(assets.sha256_of(assets.extract("fake", sys.argv[1])))
"""


@pytest.fixture
def shared(tmp_path):
    """An empty cache, a wheelhouse holding the fake wheel, and a way to start child processes on them."""
    wheel = tmp_path / "wheelhouse" / "fakepkg-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(MEMBER, PAYLOAD)
    env = dict(os.environ, TUTORLIB_CACHE=str(tmp_path / "cache"), TUTORLIB_WHEELHOUSE=str(wheel.parent),
               TUTORLIB_OFFLINE="1", SHA=assets.sha256_of(wheel), LOG=str(tmp_path / "log.txt"))

    def start(slow=False) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", CHILD, MEMBER], env=dict(env, SLOW="1" if slow else "0"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    return tmp_path / "cache", tmp_path / "log.txt", start


def steps(log: Path) -> list[str]:
    return [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*.part")]


def test_four_processes_extract_once_and_agree(shared):
    cache, log, start = shared
    children = [start() for _ in range(4)]
    results = [child.communicate(timeout=120) for child in children]
    assert [c.returncode for c in children] == [0] * 4, [err for _, err in results]
    want = hashlib.sha256(PAYLOAD).hexdigest()
    assert [out.strip() for out, _ in results] == [want] * 4
    assert sorted(steps(log)) == ["extract", "fetch"]  # one process did each step; three reused its work
    assert leftovers(cache) == []


def test_killed_extraction_blocks_no_one_and_is_redone(shared):
    cache, log, start = shared
    victim = start(slow=True)
    out = cache / "extracted" / "fake" / MEMBER
    deadline = time.time() + 60
    while not list(out.parent.glob(f".{out.name}.*.part")):  # the victim holds the lock, writing
        assert time.time() < deadline and victim.poll() is None, victim.communicate()
        time.sleep(0.2)
    others = [start() for _ in range(3)]
    time.sleep(3)  # they start, find the lock held, and wait (each says so after a second)
    assert all(o.poll() is None for o in others) and not out.exists()
    victim.send_signal(signal.SIGKILL)  # no clean-up runs: its half file and its lock file stay behind
    victim.wait()
    results = [o.communicate(timeout=120) for o in others]
    assert [o.returncode for o in others] == [0] * 3, [err for _, err in results]
    assert any("waiting for another process" in err for _, err in results)
    assert {o.strip() for o, _ in results} == {hashlib.sha256(PAYLOAD).hexdigest()}
    assert steps(log).count("extract") == 2  # the victim's, then one redo (the other two reused it)
    assert leftovers(cache) == []  # the victim's half file was removed by the process that redid it


def test_a_later_run_repairs_what_a_killed_one_left(shared, monkeypatch):
    cache, _, start = shared
    victim = start(slow=True)
    out = cache / "extracted" / "fake" / MEMBER
    while not list(out.parent.glob(f".{out.name}.*.part")):
        assert victim.poll() is None, victim.communicate()
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert leftovers(cache) and not out.exists()  # what it left: a half file, never the member itself
    child = start()  # the next run, alone
    stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == 0, stderr
    assert stdout.strip() == hashlib.sha256(PAYLOAD).hexdigest() == assets.sha256_of(out)
    assert leftovers(cache) == []


# ----------------------------------------------------------------------------- the real cache


def _wheelhouse_of_the_real_artifacts() -> Path:
    """The folder of verified artifact files in the cache `tutorlib download --all` filled (read only here)."""
    folders = {assets.fetch(name).parent for name in assets.ARTIFACTS}  # an OfflineError names what is missing
    assert len(folders) == 1
    return folders.pop()


def _download_all(env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tutorlib", "download", "--all", "--prepare"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def empty_real_cache(tmp_path, monkeypatch):
    env = dict(os.environ, TUTORLIB_WHEELHOUSE=str(_wheelhouse_of_the_real_artifacts()), TUTORLIB_OFFLINE="1",
               TUTORLIB_CACHE=str(tmp_path / "cache"))
    monkeypatch.setenv("TUTORLIB_CACHE", env["TUTORLIB_CACHE"])  # this process checks the same cache after
    return tmp_path / "cache", env


def _the_cache_loads(cache: Path) -> None:
    from tutorlib.loading.data import load_dataset
    from tutorlib.loading.models import load_model

    assert len(load_dataset("aclsum")["test"]) > 0
    for name in ("minilm-l6", "smollm2-135m"):
        model, tok = load_model(name)
        assert tok("a short sentence")["input_ids"]
    assert leftovers(cache) == []


# One SmolLM2 conversion each (the conversion is most of it): 11 min here at load average 25-30, on 2 cores.
@pytest.mark.real
@pytest.mark.timeout(1800)
def test_four_download_all_prepare_at_once_on_one_empty_cache(empty_real_cache):
    """The issue's reproduction: several `tutorlib download --all --prepare` on one empty cache."""
    cache, env = empty_real_cache
    children = [_download_all(env) for _ in range(4)]
    results = [c.communicate(timeout=1800) for c in children]
    assert [c.returncode for c in children] == [0] * 4, [err[-2000:] for _, err in results]
    conversions = sum(err.count("converting SmolLM2") for _, err in results)
    assert conversions == 1, [err for _, err in results]  # one converted, three waited and reused it
    _the_cache_loads(cache)


@pytest.mark.real
@pytest.mark.timeout(1800)
def test_killed_during_conversion_the_others_finish(empty_real_cache):
    cache, env = empty_real_cache
    victim = _download_all(env)
    converted = cache / "converted"
    deadline = time.time() + 900
    while not list(converted.glob(".smollm2-135m.*.part")):  # it holds the lock and is converting
        assert time.time() < deadline and victim.poll() is None, victim.communicate()
        time.sleep(0.5)
    others = [_download_all(env) for _ in range(3)]
    time.sleep(5)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    results = [o.communicate(timeout=1800) for o in others]
    assert [o.returncode for o in others] == [0] * 3, [err[-2000:] for _, err in results]
    assert (converted / "smollm2-135m" / MARKER).is_file()
    _the_cache_loads(cache)  # no half folder of the victim's is left, and what is there loads
