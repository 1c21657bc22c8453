"""The second half of every notebook's install cell on Colab: fetch the assets, say whether to restart.

The cell installs the kit with ``%pip`` (the pinned tag of ``[project.urls] Install`` in
``pyproject.toml``) and then calls :func:`after_install`. Nothing here imports torch: the check must
run before any heavy library is imported into the kernel.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys

# Libraries a Colab kernel may already have imported before the install cell ran. If the install
# replaced one of them with another version, the kernel still runs the old one until it restarts.
WATCHED = ("numpy", "pandas", "matplotlib", "torch", "transformers", "tokenizers", "datasets", "huggingface_hub",
           "safetensors", "accelerate", "ipywidgets")
DISTRIBUTIONS = {"huggingface_hub": "huggingface-hub"}


def stale_modules(modules=None) -> list[str]:
    """Imported modules whose installed version differs from the one loaded in this kernel, as
    ``"name loaded -> installed"``. ``modules``: a mapping name -> module (default ``sys.modules``)."""
    modules = sys.modules if modules is None else modules
    stale = []
    for name in WATCHED:
        module = modules.get(name)
        loaded = getattr(module, "__version__", None)
        if loaded is None:
            continue
        try:
            installed = importlib.metadata.version(DISTRIBUTIONS.get(name, name))
        except importlib.metadata.PackageNotFoundError:
            continue
        if installed != loaded:
            stale.append(f"{name} {loaded} -> {installed}")
    return stale


def after_install(download: bool = True) -> bool:
    """Fetch and prepare the offline models and data (``tutorlib download --all --prepare``), then print
    whether the runtime must restart. Returns True when it must.

    Raises:
        RuntimeError: the download failed (its message says which file and what to do).
    """
    importlib.invalidate_caches()  # the packages %pip just installed become importable
    if download:
        from tutorlib.loading.offline import download_offline

        try:
            download_offline(prepare=True)
        except (KeyError, OSError) as err:
            raise RuntimeError(f"Fetching the models and data failed: {err}\nRun this cell again, or in a "
                               "terminal cell: !tutorlib download --all --prepare") from err
    stale = stale_modules()
    if stale:
        print("Restart needed: this kernel still runs the old " + ", ".join(stale) + ".\n"
              "Use Runtime > Restart session, then run the notebook from the top (this cell then does nothing).")
    else:
        print("tutorlib is installed and its models and data are ready: no restart needed.")
    return bool(stale)
