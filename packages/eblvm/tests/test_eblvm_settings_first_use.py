"""A newcomer's settings: a TOML file of them, a run resumed from its folder alone,
settings that do not apply refused, and every setting described by ``eblvm settings``."""

from __future__ import annotations

import dataclasses
import json

import pytest

from eblvm.cli import main
from eblvm.presets import get_preset
from eblvm.settings import Settings, SettingsError, apply_overrides
from eblvm.settings_doc import COUNT, DESCRIPTIONS

TOML = """\
seed = 3
lr = 0.002  # an alias at the top

[cadence]
iterations = 20
log_every = 10
eval_every = 20
checkpoint_every = 10

[data]
n_train = 1000
"""


def _one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_a_config_file_sets_sections_and_set_overrides_it(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(TOML)
    settings = apply_overrides(get_preset("checkerboard-quick"), ["seed=5"], config=config)
    assert settings.seed == 5  # --set wins
    assert settings.cadence.iterations == 20 and settings.data.n_train == 1000
    assert settings.optimiser.lr == 0.002


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[cadence\n", "not valid TOML"),
        ('[cadence]\niterations = "many"\n', "cadence.iterations expects int"),
        ("[cadence]\niterations = 2.5\n", "cadence.iterations expects int"),
        ("[optimiser]\nlr = true\n", "optimiser.lr expects float"),
        ("[cadence]\niteration = 3\n", "did you mean cadence.iterations"),
        ("cadence = 3\n", "cadence is a section"),
        ("[model]\nbase_width = 8\n", "model.base_width does not apply to a grbm run"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_the_key(tmp_path, capsys, text, named):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    argv = ["train", "checkerboard-quick", "--out", str(tmp_path / "run"), "--config", str(config)]
    assert main(argv) == 2
    err = _one_line(capsys.readouterr().err)
    assert named in err
    assert not (tmp_path / "run").exists()


def test_a_run_resumes_from_its_folder_alone_with_more_iterations(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text(TOML)
    out = tmp_path / "run"
    argv = ["train", "checkerboard-quick", "--out", str(out), "--config", str(config)]
    assert main([*argv, "--set", "compile=off", "--no-progress"]) == 0
    assert json.loads((out / "config.json").read_text())["seed"] == 3
    capsys.readouterr()

    assert main(["resume", str(out), "--iterations", "10"]) == 2
    assert "at iteration 20; --iterations 10 is below it" in _one_line(capsys.readouterr().err)

    assert main(["resume", str(out), "--no-progress"]) == 0
    assert "already finished at iteration 20" in capsys.readouterr().out

    assert main(["resume", str(out), "--iterations", "30", "--no-progress"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["iteration"] for row in rows if "loss" in row] == [10, 20, 30]
    record = json.loads((out / "config.json").read_text())
    assert record["cadence"]["iterations"] == 30
    before = Settings.from_dict(record).changed(cadence={"iterations": 20})
    assert (
        before.to_dict()
        == apply_overrides(
            get_preset("checkerboard-quick"), ["compile=off"], config=config
        ).to_dict()
    )  # nothing but the iterations changed


def test_resume_names_a_folder_that_holds_no_run(tmp_path, capsys):
    assert main(["resume", str(tmp_path)]) == 2
    assert "is not a run folder" in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("preset", "assignment", "named"),
    [
        ("checkerboard-vages-dsm", "model.base_width=8", "a grbm run trained by vages with dsm"),
        ("checkerboard-cd", "posterior.steps=3", "a grbm run trained by cd"),
        ("checkerboard-vages-dsm", "objective.sigma_max=2", "trained by vages with dsm"),
        ("digits32-vages-mdsm", "model.weight_std=1", "a deep-eblvm run"),
    ],
)
def test_a_setting_that_does_not_apply_is_refused_naming_the_run(preset, assignment, named):
    with pytest.raises(SettingsError) as caught:
        apply_overrides(get_preset(preset), [assignment], strict=True)
    message = str(caught.value)
    assert message.startswith(f"{assignment.partition('=')[0]} does not apply to")
    assert named in message


def test_a_setting_that_applies_after_a_method_change_is_accepted():
    settings = apply_overrides(
        get_preset("checkerboard-vages-dsm"), ["method=cd", "method.cd_steps=3"], strict=True
    )
    assert settings.method.cd_steps == 3
    with pytest.raises(SettingsError, match=r"method\.cd_steps does not apply"):
        apply_overrides(get_preset("checkerboard-vages-dsm"), ["method.cd_steps=3"], strict=True)
    lenient = apply_overrides(get_preset("checkerboard-vages-dsm"), ["method.cd_steps=3"])
    assert lenient.to_dict() == get_preset("checkerboard-vages-dsm").to_dict()  # not read


def test_compare_refuses_a_setting_that_no_compared_run_reads(capsys):
    from eblvm.cli import sweep_configs

    both = ["checkerboard-vages-dsm", "checkerboard-cd"]
    configs = sweep_configs(both, ["posterior.lr=0.01"], None)  # the VaGES run reads it
    assert configs["checkerboard-vages-dsm"].posterior.lr == 0.01
    with pytest.raises(SettingsError, match="a grbm run trained by vages with dsm or a grbm"):
        sweep_configs(both, ["model.base_width=8"], None)
    with pytest.raises(SettingsError, match=r"model\.base_width does not apply"):
        sweep_configs(both, [], "base_width=8,16")
    argv = ["compare", *both, "--out", "unused", "--set", "model.base_width=8"]
    assert main(argv) == 2
    assert "model.base_width does not apply" in _one_line(capsys.readouterr().err)


def test_every_setting_is_described_and_the_command_lists_them(capsys):
    names = [name for name, _ in Settings().items()]
    assert sorted(DESCRIPTIONS) == sorted(names)
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    for name in names:
        leaf = name.rpartition(".")[2]
        assert any(line.split()[:1] == [leaf] for line in out.splitlines()), name
    assert "[optimiser]" in out and "one of constant, cosine" in out
    assert main(["settings", "checkerboard-cd"]) == 0
    out = capsys.readouterr().out
    leaves = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    assert "cd_steps" in leaves and "base_width" not in leaves and "n_samples" not in leaves
    assert "more settings do not apply" in out


def _base() -> Settings:
    return Settings().changed(method={"name": "vaes"})  # VaES: n_samples >= 1


def _with(settings: Settings, name: str, value: object) -> Settings:
    section, _, leaf = name.rpartition(".")
    if not section:
        return dataclasses.replace(settings, **{leaf: value})
    return settings.changed(**{section: {leaf: value}})


@pytest.mark.parametrize(
    "name",
    [n for n, (allowed, _) in DESCRIPTIONS.items() if allowed.startswith(COUNT.format(""))],
)
def test_the_described_least_counts_are_those_checked(name):
    least = int(DESCRIPTIONS[name][0].rpartition(" ")[2])
    _with(_base(), name, least)
    with pytest.raises(SettingsError, match=name.replace(".", r"\.")):
        _with(_base(), name, least - 1)


@pytest.mark.parametrize(
    "name",
    [
        n
        for n, (allowed, _) in DESCRIPTIONS.items()
        if allowed.startswith("one of") and n not in ("data.dataset", "method.name")
    ],
)
def test_the_described_choices_are_those_checked(name):
    for choice in DESCRIPTIONS[name][0].removeprefix("one of ").split(", "):
        _with(_base(), name, choice)
    with pytest.raises(SettingsError, match=name.rpartition(".")[2]):
        _with(_base(), name, "nonsense")


def test_load_run_gives_a_grbm_run_its_model_and_posterior_and_sample_works(tmp_path, capsys):
    import torch

    import eblvm
    from eblvm.runs import load_checkpoint
    from ebm_models import GRBM

    out = tmp_path / "run"
    tiny = ["--set=n_train=1000", "--set=compile=off", "--set=iterations=20", "--no-progress"]
    assert main(["train", "checkerboard-vages-dsm", "--out", str(out), *tiny]) == 0
    run = eblvm.load_run(out)
    assert isinstance(run.model, GRBM) and run.iteration == 20
    assert run.settings == Settings.from_dict(json.loads((out / "config.json").read_text()))
    state = load_checkpoint(out / "checkpoint.pt")["state"]
    for name, parameter in run.model.named_parameters():
        assert torch.equal(parameter, state["theta"][name]) and not parameter.requires_grad
    assert run.posterior is not None
    for name, parameter in run.posterior.named_parameters():
        assert torch.equal(parameter, state["phi"][name])
    assert main(["sample", str(out), "--n", "16", "--gibbs-steps", "5"]) == 0
    assert (out / "samples.png").is_file()


def test_load_run_of_an_image_run_and_of_a_custom_run(tmp_path):
    import torch

    import eblvm
    from eblvm.custom import ModelTask
    from eblvm.parts import Model
    from ebm_models import DeepEBM
    from score_estimators import GaussianPosterior

    out = tmp_path / "images"
    settings = apply_overrides(
        get_preset("digits32-ebm-mdsm"),
        ["iterations=2", "base_width=8", "model.blocks_per_stage=1", "batch_size=8", "compile=off"],
    )
    eblvm.train(eblvm.task_for(settings), settings, out, progress=False)
    run = eblvm.load_run(out)
    assert isinstance(run.model, DeepEBM) and run.posterior is None and run.iteration == 2

    class Energy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(2, 1))

        def forward(self, v, h):
            return 0.5 * (v - h @ self.w.T).square().sum(-1) + 0.5 * h.square().sum(-1)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mean = torch.nn.Linear(2, 1)

        def forward(self, v):
            mean = self.mean(v)
            return mean, torch.zeros_like(mean)

    task = ModelTask(
        torch.randn(100, 2), build=lambda g: Model(Energy(), GaussianPosterior(Net()), (1,))
    )
    mine = Settings().changed(
        data={"dataset": "custom", "batch_size": 10},
        cadence={"iterations": 3, "log_every": 3, "eval_every": 3, "checkpoint_every": 3},
    )
    eblvm.train(task, mine, tmp_path / "mine", progress=False)
    with pytest.raises(ValueError, match="pass the ModelTask"):
        eblvm.load_run(tmp_path / "mine")
    run = eblvm.load_run(tmp_path / "mine", task=task)
    assert isinstance(run.model, Energy) and not torch.equal(run.model.w, torch.ones(2, 1))


def test_compare_of_image_presets_shows_their_loss(tmp_path, capsys):
    argv = ["compare", "digits32-ebm-mdsm", "--out", str(tmp_path), "--seeds", "2"]
    tiny = ["iterations=2", "base_width=8", "model.blocks_per_stage=1", "batch_size=8"]
    assert main([*argv, *(f"--set={a}" for a in [*tiny, "compile=off"]), "--no-progress"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| method | seeds | loss (mean ± std) | seconds per run")
    cells = [cell.strip() for cell in table[2].split("|")[1:-1]]
    assert cells[0] == "digits32-ebm-mdsm" and cells[1] == "2/2"
    mean, _, std = cells[2].partition(" ± ")
    assert float(mean) > 0 and float(std) >= 0 and "fid" not in table[0]


def test_the_table_has_a_fid_column_only_when_runs_computed_one():
    from eblvm.experiments.compare import format_table

    rows = [
        {"method": "a", "seeds": 2, "failures": [], "loss_mean": 1.0, "loss_std": 0.1},
        {"method": "b", "seeds": 2, "failures": [], "loss_mean": 2.0, "loss_std": 0.2},
    ]
    assert "fid" not in format_table(rows, "loss")
    rows[1].update({"fid_mean": 80.0, "fid_std": 3.0})
    lines = format_table(rows, "loss").splitlines()
    assert lines[0].startswith("| method | seeds | loss (mean ± std) | fid (mean ± std) |")
    assert "| a | 2/2 | 1.0000 ± 0.1000 | – |" in lines[2]
    assert "| b | 2/2 | 2.0000 ± 0.2000 | 80.0000 ± 3.0000 |" in lines[3]


def test_a_narrow_loss_range_is_drawn_on_a_linear_axis(tmp_path, monkeypatch):
    from eblvm import plots

    figures = []
    monkeypatch.setattr(plots.plt, "close", figures.append)
    for loss, scale in [(lambda i: 397.5 + i / 100, "linear"), (lambda i: 1000 / i, "log")]:
        rows = [{"iteration": i, "loss": loss(i)} for i in range(1, 60)]
        (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        plots.plot_run(tmp_path)
        assert figures.pop().axes[0].get_yscale() == scale
