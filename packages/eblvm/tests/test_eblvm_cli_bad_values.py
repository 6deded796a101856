"""Values that cannot work — sizes beyond the machine's memory, a device it lacks, a
sampler driven to overflow, data with NaN — end in one line of ours and the status
the README gives, before any work where that is cheap."""

from __future__ import annotations

import pytest
import torch
from eblvm_testing import small_grbm

import eblvm.memory
from eblvm import Model, ModelTask, train
from eblvm.cli import main
from eblvm.memory import check_fits, least_bytes
from eblvm.presets import get_preset
from eblvm.settings import SettingsError, apply_overrides

GB = 10**9


@pytest.mark.parametrize(
    ("assignment", "largest"),
    [
        ("data.n_train=1e9", "data.n_train"),
        ("method.n_samples=1e9", "data.batch_size × method.n_samples × model.h_dim"),
        ("data.batch_size=1e9", "data.batch_size × method.n_samples × model.h_dim"),
        # the final density plot's log p on its 200² points: killed by the system, not
        # refused by torch, when it was not counted
        ("model.h_dim=1e5", "model.h_dim"),
        ("model.h_dim=1e7", "model.h_dim"),
        ("data.columns=1e9", "data.columns"),
    ],
)
def test_sizes_beyond_the_memory_are_refused_before_any_tensor(
    tmp_path, capsys, monkeypatch, assignment, largest
):
    monkeypatch.setattr(eblvm.memory, "available_bytes", lambda: 16 * GB)
    out = tmp_path / "run"
    assert main(["train", "checkerboard-quick", "--out", str(out), f"--set={assignment}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("eblvm: error: these settings need at least ")
    assert f"(mostly for {largest}), more than the 16 GB free here: lower {largest}" in err
    assert not out.exists()


def test_the_bound_counts_what_the_settings_certainly_make():
    settings = apply_overrides(get_preset("checkerboard-quick"), ["n_train=1000", "h_dim=30"])
    parts = least_bytes(settings)
    batch, samples = settings.data.batch_size, settings.method.n_samples
    chains = settings.evaluation.ais_chains  # h = 30 > 20: log Z by AIS
    assert parts == {
        "data.n_train": 40 * 1000,
        "data.columns": 16 * 2,  # the two dark cells of a 2 × 2 board
        "data.batch_size × method.n_samples × model.h_dim": 3 * 4 * batch * samples * 30,
        "model.h_dim": 2 * 4 * 200**2 * 30,  # the density plot's logits and their softplus
        "evaluation.ais_chains × model.h_dim": 2 * 4 * chains * 30,
    }
    exact = apply_overrides(settings, ["h_dim=20"])
    assert "evaluation.ais_chains × model.h_dim" not in least_bytes(exact)
    check_fits(settings, available=sum(parts.values()))
    with pytest.raises(SettingsError, match="need at least"):
        check_fits(settings, available=sum(parts.values()) - 1)


def test_torch_refusing_memory_is_one_line_of_ours(tmp_path, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough "
            "memory: you tried to allocate 8000000000 bytes."
        )

    monkeypatch.setattr("eblvm.loop.train", refuse)
    assert main(["train", "checkerboard-quick", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("eblvm: error: out of memory (")
    assert "lower data.n_train, data.batch_size, method.n_samples or model.h_dim" in err


def test_sample_bounds_n(tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["sample", str(tmp_path), "--n", "1e8"])
    assert caught.value.code == 2
    assert "argument --n: must be at most 100000" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("nonsense", "--device must be cpu, cuda or cuda:N, got 'nonsense'"),
        ("cuda:7", "--device cuda:7: this machine has"),
    ],
)
def test_a_device_this_machine_lacks_is_one_line(tmp_path, capsys, device, message):
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has eight GPUs")
    assert main(["sample", str(tmp_path), "--device", device]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_data_with_nan_is_refused_when_the_task_is_made():
    data = torch.rand(50, 3)
    data[17, 1] = float("nan")
    data[30, 0] = float("inf")

    def build(generator: torch.Generator) -> Model:
        raise AssertionError("not reached")

    expected = r"2 of its 50 examples hold NaN or ±inf \(the first: row 17\)"
    with pytest.raises(ValueError, match=expected):
        ModelTask(data, build=build)


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_one_non_finite_row_is_refused_before_training_naming_it(tmp_path, bad):
    data = torch.rand(20, 2)
    data[0, 1] = bad
    expected = r"1 of its 20 examples hold NaN or ±inf \(the first: row 0\)"
    with pytest.raises(ValueError, match=expected):
        train(ModelTask(data, build=_unreachable), small_grbm(), tmp_path, progress=False)
    assert not any(tmp_path.iterdir())  # refused when the task was made: no run folder written


def _unreachable(generator: torch.Generator) -> Model:
    raise AssertionError("not reached")
