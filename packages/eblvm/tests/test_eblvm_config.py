"""Settings: overrides, validation, fingerprints."""

from __future__ import annotations

import pytest

from eblvm import PRESETS, TrainConfig, apply_overrides, get_preset


def test_overrides_parse_each_field_by_its_type():
    config = apply_overrides(
        TrainConfig(), ["iterations=7", "lr=0.5", "method=cd", "select_by_validation=true"]
    )
    assert (config.iterations, config.lr, config.method) == (7, 0.5, "cd")
    assert config.select_by_validation is True


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("nonsense=1", "unknown setting 'nonsense'"),
        ("iterations=many", "iterations expects a int"),
        ("iterations", "key=value"),
        ("select_by_validation=maybe", "expects a bool"),
        ("method=magic", "method must be one of"),
        ("n_samples=1", "n_samples must be >= 2"),
        ("dsm_sigma=0", "dsm_sigma must be positive"),
    ],
)
def test_bad_overrides_are_refused_with_the_reason(assignment, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(TrainConfig(), [assignment])


def test_fingerprint_ignores_only_the_run_length():
    base = TrainConfig()
    assert base.fingerprint() == apply_overrides(base, ["iterations=5"]).fingerprint()
    assert base.fingerprint() != apply_overrides(base, ["seed=1"]).fingerprint()


def test_unknown_preset_lists_how_to_find_them():
    with pytest.raises(ValueError, match="eblvm list"):
        get_preset("checkerbored")


def test_presets_carry_the_papers_settings():
    vages = PRESETS["checkerboard-vages-dsm"]
    assert (vages.h_dim, vages.n_samples, vages.posterior_steps, vages.dsm_sigma) == (4, 2, 5, 0.05)
    assert (vages.lr, vages.beta1, vages.beta2, vages.batch_size) == (1e-3, 0.9, 0.95, 100)
    assert vages.iterations == 100_000
    frey = PRESETS["frey-vages-dsm"]
    assert (frey.h_dim, frey.lr, frey.iterations, frey.dsm_sigma) == (400, 2e-4, 20_000, 0.3)
    assert {PRESETS[f"checkerboard-is-ksd-l{n}"].n_samples for n in (2, 5, 10)} == {2, 5, 10}
    assert {PRESETS[f"checkerboard-bism-dsm-n{n}"].n_unroll for n in (0, 2, 5)} == {0, 2, 5}
