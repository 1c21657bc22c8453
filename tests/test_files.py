"""Atomic writes: a reader sees the old file or folder or the new one, never half, and no temporary
path outlives a failed write."""

import doctest
import os

import pytest

from tutorlib import files
from tutorlib.files import atomic_file, atomic_folder, remove_abandoned_parts, replace_folder, write_atomic


def test_docstring_examples_run():
    assert doctest.testmod(files).failed == 0


def test_write_atomic_writes_bytes_and_text_and_makes_the_folder(tmp_path):
    path = tmp_path / "deep" / "notes.txt"
    assert write_atomic(path, "héllo\n") == path and path.read_text(encoding="utf-8") == "héllo\n"
    write_atomic(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert os.listdir(path.parent) == ["notes.txt"]  # no temporary file left


def test_written_files_follow_the_umask_like_an_ordinary_file(tmp_path):
    ordinary = tmp_path / "ordinary"
    ordinary.write_text("x")
    assert (write_atomic(tmp_path / "atomic", "x").stat().st_mode & 0o777) == (ordinary.stat().st_mode & 0o777)


def test_an_error_while_writing_keeps_the_old_file_and_leaves_no_part(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_file(path) as tmp:
            tmp.write_text("half of the ne")
            raise RuntimeError("disk full")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["results.json"]


def test_atomic_folder_replaces_an_old_folder_whole(tmp_path):
    path = tmp_path / "converted"
    path.mkdir()
    (path / "stale.bin").write_text("stale")
    with atomic_folder(path) as tmp:
        assert tmp.parent == path.parent and tmp.name.startswith(".converted.") and tmp.name.endswith(".part")
        (tmp / "model.safetensors").write_text("new")
    assert sorted(os.listdir(path)) == ["model.safetensors"] and os.listdir(tmp_path) == ["converted"]


def test_atomic_folder_keep_existing_leaves_the_first_writers_folder(tmp_path):
    path = tmp_path / "dataset"
    with atomic_folder(path, keep_existing=True) as tmp:
        (tmp / "who").write_text("first")
    with atomic_folder(path, keep_existing=True) as tmp:
        (tmp / "who").write_text("second")
    assert (path / "who").read_text() == "first" and os.listdir(tmp_path) == ["dataset"]


def test_an_error_while_filling_a_folder_leaves_the_old_one(tmp_path):
    path = tmp_path / "out"
    path.mkdir()
    (path / "results.json").write_text("old")
    with pytest.raises(OSError, match="No space"):
        with atomic_folder(path) as tmp:
            (tmp / "results.json").write_text("ne")
            raise OSError("No space left on device")
    assert (path / "results.json").read_text() == "old" and os.listdir(tmp_path) == ["out"]


def test_replace_folder_puts_the_old_folder_back_when_the_rename_fails(tmp_path, monkeypatch):
    path, new = tmp_path / "out", tmp_path / "staging"
    path.mkdir(), new.mkdir()
    (path / "old").write_text("old")
    real_rename = os.rename

    def failing_rename(src, dst):
        if str(src) == str(new):
            raise PermissionError("denied")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(PermissionError):
        replace_folder(new, path)
    assert (path / "old").read_text() == "old" and sorted(os.listdir(tmp_path)) == ["out", "staging"]


def test_abandoned_parts_are_removed_live_ones_kept(tmp_path):
    dead = tmp_path / ".smollm2-135m.999999999.part"  # no process has this id
    dead_file = tmp_path / ".smollm2-135m.1a2b3c4d.999999999.part"
    live = tmp_path / f".smollm2-135m.1a2b3c4d.{os.getpid()}.part"
    dead.mkdir(), live.mkdir(), dead_file.write_text("half")
    assert sorted(remove_abandoned_parts(tmp_path / "smollm2-135m")) == sorted([dead, dead_file])
    assert not dead.exists() and not dead_file.exists() and live.exists()
