"""CIFAR10 from small pickled batches in the published format."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from eblvm_data import cifar10

NAMES = [f"data_batch_{index}" for index in range(1, 6)] + ["test_batch"]


def write_batches(
    root: Path, sizes: list[int], seed: int = 0, protocol: int = 2
) -> list[np.ndarray]:
    """Write the six batches (protocol 2, bytes keys, as published); return their rows."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for name, size in zip(NAMES, sizes, strict=True):
        data = rng.integers(0, 256, size=(size, 3072), dtype=np.uint8)
        batch = {b"batch_label": name.encode(), b"labels": [0] * size, b"data": data}
        with (folder / name).open("wb") as stream:
            pickle.dump(batch, stream, protocol=protocol)
        rows.append(data)
    return rows


def test_layout_order_scale_and_split(tmp_path: Path) -> None:
    rows = write_batches(tmp_path, [4, 4, 4, 4, 4, 3])
    splits = cifar10(tmp_path, n_validation=5)
    assert [tuple(split.shape) for split in splits] == [
        (15, 3, 32, 32),
        (5, 3, 32, 32),
        (3, 3, 32, 32),
    ]
    assert all(split.dtype == torch.float32 for split in splits)
    train_rows, test_rows = np.concatenate(rows[:5]), rows[5]
    # Each row is the red, then green, then blue plane, each 32 rows of 32 pixels.
    for split, source in [(splits.train, train_rows[:15]), (splits.validation, train_rows[15:])]:
        for image in (0, len(source) - 1):
            expected = torch.empty(3, 32, 32, dtype=torch.float64)
            for channel in range(3):
                for i in range(32):
                    for j in range(32):
                        value = source[image, channel * 1024 + i * 32 + j]
                        expected[channel, i, j] = value / 255
            torch.testing.assert_close(split[image].double(), expected, rtol=0, atol=1e-7)
    expected_test = torch.from_numpy(test_rows.astype(np.float64) / 255).reshape(3, 3, 32, 32)
    torch.testing.assert_close(splits.test.double(), expected_test, rtol=0, atol=1e-7)


def test_missing_batch_names_the_file_and_the_source(tmp_path: Path) -> None:
    write_batches(tmp_path, [2] * 6)
    missing = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    missing.unlink()
    with pytest.raises(FileNotFoundError) as info:
        cifar10(tmp_path, n_validation=1)
    message = str(info.value)
    assert str(missing) in message and "data_batch_1" not in message
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in message


def test_missing_folder_names_every_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        cifar10(tmp_path)
    for name in NAMES:
        assert str(tmp_path / "cifar-10-batches-py" / name) in str(info.value)


@pytest.mark.parametrize(
    "batch",
    [
        {b"labels": [0]},
        {"data": np.zeros((2, 3072), dtype=np.uint8)},
        {b"data": np.zeros((2, 100), dtype=np.uint8)},
        {b"data": np.zeros((2, 3072), dtype=np.float32)},
        [1, 2, 3],
    ],
    ids=["no data", "str key", "wrong width", "wrong dtype", "not a dict"],
)
def test_bad_batch_names_the_file(tmp_path: Path, batch: object) -> None:
    write_batches(tmp_path, [2] * 6)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_4"
    with path.open("wb") as stream:
        pickle.dump(batch, stream, protocol=2)
    with pytest.raises(ValueError) as info:
        cifar10(tmp_path, n_validation=1)
    assert str(path) in str(info.value)


def test_unreadable_batch_names_the_file(tmp_path: Path) -> None:
    write_batches(tmp_path, [2] * 6)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError) as info:
        cifar10(tmp_path, n_validation=1)
    assert str(path) in str(info.value)


def test_validation_must_leave_training_images(tmp_path: Path) -> None:
    write_batches(tmp_path, [2] * 6)
    with pytest.raises(ValueError, match="n_validation"):
        cifar10(tmp_path)
    with pytest.raises(ValueError, match="n_validation"):
        cifar10(tmp_path, n_validation=10)


# --- the restricted unpickler ---------------------------------------------------


class OpensAFile:
    """Unpickling this calls ``open(path, "w")``, which creates the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (open, (str(self.path), "w"))


class RunsAShell:
    """Unpickling this runs ``touch path`` through ``os.system``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch '{self.path}'",))


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize(
    ("payload", "refused"),
    [(OpensAFile, "io.open"), (RunsAShell, "system")],
    ids=["open", "os.system"],
)
@pytest.mark.parametrize("nested", [False, True], ids=["alone", "inside a batch"])
def test_a_crafted_pickle_is_refused_before_it_runs(
    tmp_path: Path, payload: type, refused: str, nested: bool, protocol: int
) -> None:
    write_batches(tmp_path, [2] * 6)
    marker = tmp_path / "created-by-the-payload"
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    evil: object = payload(marker)
    if nested:  # a genuine batch whose labels hide the payload
        evil = {b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": [0, evil]}
    with path.open("wb") as stream:
        pickle.dump(evil, stream, protocol=protocol)
    with pytest.raises(ValueError) as info:
        cifar10(tmp_path, n_validation=1)
    message = str(info.value)
    assert str(path) in message and "refused" in message and refused in message
    assert not marker.exists()


def test_the_payloads_do_run_under_a_plain_unpickler(tmp_path: Path) -> None:
    # The check above means something: the same bytes do create the file.
    for index, payload in enumerate([OpensAFile, RunsAShell]):
        marker = tmp_path / f"created-{index}"
        result = pickle.loads(pickle.dumps(payload(marker), protocol=2))
        if hasattr(result, "close"):
            result.close()
        assert marker.exists()


def test_codecs_encode_is_allowed_only_for_latin1_bytes(tmp_path: Path) -> None:
    write_batches(tmp_path, [2] * 6)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    # _codecs.encode("abc", "rot13"), spelled as protocol 2 spells bytes.
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13\x86R.")
    with pytest.raises(ValueError) as info:
        cifar10(tmp_path, n_validation=1)
    assert str(path) in str(info.value) and "latin1" in str(info.value)


@pytest.mark.parametrize("protocol", [0, 2, 3, 4, 5])
def test_genuine_batches_load_with_any_protocol(tmp_path: Path, protocol: int) -> None:
    rows = write_batches(tmp_path, [3, 2, 2, 2, 2, 2], seed=1, protocol=protocol)
    splits = cifar10(tmp_path, n_validation=2)
    expected = torch.from_numpy(np.concatenate(rows[:5]).astype(np.float32) / 255)
    assert torch.equal(torch.cat([splits.train, splits.validation]).reshape(11, -1), expected)
    assert torch.equal(
        splits.test.reshape(2, -1), torch.from_numpy(rows[5].astype(np.float32) / 255)
    )


def test_batches_that_name_numpy_1_modules_load(tmp_path: Path) -> None:
    # numpy 1.x (and the published Python 2 files) name numpy.core, numpy 2.x numpy._core.
    rows = write_batches(tmp_path, [2] * 6, seed=2)
    folder = tmp_path / "cifar-10-batches-py"
    for name in NAMES:
        raw = (folder / name).read_bytes()
        renamed = raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
        assert b"cnumpy.core.multiarray\n_reconstruct\n" in renamed
        (folder / name).write_bytes(renamed)
    splits = cifar10(tmp_path, n_validation=1)
    assert torch.equal(
        splits.test.reshape(2, -1), torch.from_numpy(rows[5].astype(np.float32) / 255)
    )
