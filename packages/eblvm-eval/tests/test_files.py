"""The one atomic writer: the old file or the new one, never half of one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from eblvm_eval import write_atomically
from eblvm_eval.files import TEMPORARY_MARK


def test_writes_the_bytes_and_creates_the_folders(tmp_path: Path) -> None:
    path = write_atomically(tmp_path / "a" / "b.bin", lambda file: file.write(b"new"))
    assert path == tmp_path / "a" / "b.bin"
    assert path.read_bytes() == b"new"
    assert [p.name for p in path.parent.iterdir()] == ["b.bin"]


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_bytes(b"old")

    def fail(file: object) -> None:
        file.write(b"half")  # type: ignore[attr-defined]
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, fail)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_the_temporary_file_is_beside_the_target_and_marked(tmp_path: Path) -> None:
    seen: list[str] = []

    def write(file: object) -> None:
        seen.extend(p.name for p in tmp_path.iterdir())

    write_atomically(tmp_path / "x.png", write)
    assert len(seen) == 1 and seen[0].startswith(f".x.png{TEMPORARY_MARK}")
    assert list(tmp_path.glob(f".*{TEMPORARY_MARK}*")) == []


def test_the_file_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        path = write_atomically(tmp_path / "x", lambda file: file.write(b""))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640
