"""Shared set-up for pytest and nbval (notebooks run in fast mode too). Tests never reach the network: real
assets come from the cache that `tutorlib download --all` filled (CI does that first, explicitly);
TUTORLIB_OFFLINE=1 is set here so a missing asset is a loud OfflineError, never a silent download."""

import os

os.environ.setdefault("TUTORLIB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TUTORLIB_FAST", "1")

import atexit
import gc
import shutil
import tempfile

# Zero-shot rows a comparison stores for later ones (tutorlib.experiments.zero_shot_cache) go to a folder
# of this test run, removed at its end: tests never write into the shared asset cache, and each run makes
# its rows afresh. Notebook kernels started by nbval inherit it.
if "TUTORLIB_ROW_CACHE" not in os.environ:
    os.environ["TUTORLIB_ROW_CACHE"] = tempfile.mkdtemp(prefix="tutorlib-rows-")
    atexit.register(shutil.rmtree, os.environ["TUTORLIB_ROW_CACHE"], ignore_errors=True)


def pytest_collection_finish(session):
    """Once every test module is imported (torch, transformers, datasets: about half a million objects),
    move those objects out of the garbage collector's sight: each later collection, Python's automatic
    ones included, then walks only what the tests make (gc.freeze, Python >= 3.7)."""
    gc.collect()
    gc.freeze()
