"""The one atomic writer: the old file or the new one, never half of one."""

from __future__ import annotations

import errno
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


def test_two_writers_of_one_file_never_share_a_temporary_name(tmp_path: Path) -> None:
    """A second writer of the same file (another `eblvm plot` of the run) while the first
    is writing: each its own temporary file, both complete, the last rename wins."""
    path = tmp_path / "curves.png"
    seen: list[str] = []

    def outer(file: object) -> None:
        file.write(b"first")  # type: ignore[attr-defined]
        write_atomically(path, lambda inner: inner.write(b"second"))
        seen.extend(p.name for p in tmp_path.iterdir())

    write_atomically(path, outer)
    assert path.read_bytes() == b"first"
    assert [name for name in seen if TEMPORARY_MARK in name] != []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"]


def test_a_name_near_the_limit_gets_a_temporary_name_that_fits(tmp_path: Path) -> None:
    path = tmp_path / ("p" * 250)
    assert write_atomically(path, lambda file: file.write(b"x")).read_bytes() == b"x"


def test_a_failure_names_the_target_never_the_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "report.json"

    def full(file: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError) as raised:
        write_atomically(path, full)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(path)


def test_torchs_failed_write_is_the_oserror_behind_it(tmp_path: Path) -> None:
    """torch.save reports a failed write as RuntimeError `unexpected pos`; the writer
    raises the file's OSError instead, naming the target."""
    torch = pytest.importorskip("torch")
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"old")

    class Full:
        def __init__(self, file: object) -> None:
            self.file = file

        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def flush(self) -> None:
            pass

    with pytest.raises(OSError) as raised:
        write_atomically(path, lambda file: torch.save({"a": torch.zeros(100)}, Full(file)))
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(path)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
