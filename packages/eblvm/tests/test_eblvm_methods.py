"""Methods and model families, each one declaration: a new one is declared in one place
and trained through the command line; a run records, shows and fingerprints the
settings its family and method read; an unknown key names the nearest known one."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re

import pytest
import torch
from eblvm_testing import small_grbm

from eblvm import Model, ModelTask
from eblvm.cli import main
from eblvm.families import FAMILIES, Family, family_of, register_family
from eblvm.methods import METHODS, Method, method_named, register_method, score_matching
from eblvm.presets import get_preset
from eblvm.runs import load_checkpoint
from eblvm.settings import Settings, SettingsError, apply_overrides
from score_estimators import ExactScore, GaussianPosterior, ImportanceSampling

RUN = [
    "--set=n_train=1000",
    "--set=iterations=6",
    "--set=eval_every=3",
    "--set=log_every=3",
    "--set=checkpoint_every=3",
    "--set=compile=off",
    "--no-progress",
]


@pytest.fixture
def declared():
    """Declare methods and families for one test, and forget them after it."""
    methods, families = [], []

    def declare(thing):
        if isinstance(thing, Method):
            methods.append(register_method(thing).name)
        else:
            families.append(register_family(thing).name)
        return thing

    yield declare
    for name in methods:
        METHODS.pop(name)
    for name in families:
        FAMILIES.pop(name)


def _theta(out):
    return load_checkpoint(out / "checkpoint.pt")["state"]["theta"]


def test_a_method_declared_in_one_place_trains_through_the_command_line(tmp_path, declared):
    declared(
        Method(
            name="toy-exact",
            description="the exact score, declared again",
            build=score_matching(lambda settings, parts: ExactScore()),
            exact_score=True,
            objective=True,
        )
    )
    ours, theirs = tmp_path / "toy", tmp_path / "exact"
    command = ["train", "checkerboard-quick", *RUN]
    assert main([*command, "--out", str(ours), "--set", "method=toy-exact"]) == 0
    assert main([*command, "--out", str(theirs), "--set", "method=exact"]) == 0
    record = json.loads((ours / "config.json").read_text())
    assert record["method"] == {"name": "toy-exact"} and "posterior" not in record
    assert record["objective"] == {"name": "dsm", "sigma": 0.05}
    ours_theta, theirs_theta = _theta(ours), _theta(theirs)
    assert ours_theta.keys() == theirs_theta.keys()
    assert all(torch.equal(ours_theta[k], theirs_theta[k]) for k in ours_theta)


def test_a_declared_method_reads_the_settings_it_names(tmp_path, capsys, declared):
    declared(
        Method(
            name="toy-is",
            description="importance sampling with at least four draws",
            build=score_matching(lambda s, parts: ImportanceSampling(s.method.n_samples)),
            reads=("n_samples",),
            minimum={"n_samples": 4},
            posterior=True,
            objective=True,
            details="L={method.n_samples}",
        )
    )
    with pytest.raises(SettingsError, match=r"method\.n_samples must be an integer >= 4, got 2"):
        small_grbm("method=toy-is")
    settings = small_grbm("method=toy-is", "n_samples=4")
    assert "method.n_samples" in settings.reads() and "posterior.lr" in settings.reads()
    assert "method.n_unroll" not in settings.reads()
    assert (
        main(["show", "checkerboard-quick", "--set", "method=toy-is", "--set", "n_samples=5"]) == 0
    )
    shown = dict(line.split(maxsplit=1) for line in capsys.readouterr().out.splitlines())
    assert shown["method.n_samples"] == "5" and "method.cd_steps" not in shown
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert re.search(r"\btoy-is +importance sampling with at least four draws", listed)


def test_a_family_declared_in_one_place_trains_through_the_command_line(tmp_path, declared):
    data = torch.randn(200, 3, generator=torch.Generator().manual_seed(0))

    def build(generator):
        return Model(_Energy(), GaussianPosterior(_Net()), (2,))

    declared(
        Family(
            name="toy-family",
            description="a bilinear energy on Gaussian vectors",
            datasets=("toy-vectors",),
            task=lambda settings: ModelTask(data, build=build),
            reads=("data.n_train",),
            serves=lambda method: method.posterior and method.objective,
            served="score-matching methods with a posterior",
        )
    )
    out = tmp_path / "run"
    command = ["train", "checkerboard-quick", "--out", str(out), *RUN]
    assert main([*command, "--set", "dataset=toy-vectors", "--set", "batch_size=20"]) == 0
    record = json.loads((out / "config.json").read_text())
    assert record["data"] == {"dataset": "toy-vectors", "n_train": 1000, "batch_size": 20}
    assert "model" not in record and "evaluation" in record
    assert Settings.from_dict(record).family.name == "toy-family"
    with pytest.raises(SettingsError, match="no model family trains method cd on toy-vectors"):
        small_grbm("dataset=toy-vectors", "method=cd")


class _Energy(torch.nn.Module):
    """E(v, h) = ½‖v − Wh‖² + ½‖h‖²; v: (B, 3), h: (L, B, 2) -> (L, B)."""

    def __init__(self) -> None:
        super().__init__()
        self.W = torch.nn.Parameter(0.1 * torch.ones(3, 2))

    def forward(self, v, h):
        return 0.5 * (v - h @ self.W.T).square().sum(-1) + 0.5 * h.square().sum(-1)


class _Net(torch.nn.Module):
    """v -> (mean, log_std) of q(h | v)."""

    def __init__(self) -> None:
        super().__init__()
        self.mean = torch.nn.Linear(3, 2)
        self.log_std = torch.nn.Parameter(torch.zeros(2))

    def forward(self, v):
        mean = self.mean(v)
        return mean, self.log_std.expand_as(mean)


def test_each_run_records_and_shows_only_what_its_family_and_method_read():
    cd = get_preset("checkerboard-cd").to_dict()
    assert cd["method"] == {"name": "cd", "cd_steps": 1}
    assert "posterior" not in cd and "sampling" not in cd and "fid" not in cd
    ebm = get_preset("cifar10-ebm-mdsm")
    assert ebm.family is FAMILIES["deep-ebm"]
    assert "model.h_dim" not in ebm.reads() and "model.base_width" in ebm.reads()
    assert set(ebm.to_dict()["objective"]) == {
        "name",
        "sigma_min",
        "sigma_max",
        "schedule",
        "sigma0",
    }
    eblvm = get_preset("cifar10-vages-mdsm")
    assert eblvm.family is FAMILIES["deep-eblvm"]
    assert {"method.refine_steps", "posterior.loss", "model.h_dim"} <= set(eblvm.reads())
    assert "posterior.temperature" not in eblvm.reads()
    counts = {
        name: len(get_preset(name).reads()) for name in ("checkerboard-cd", "cifar10-vages-mdsm")
    }
    assert all(count < len(list(Settings().items())) for count in counts.values())


def test_a_record_round_trips_and_an_old_full_record_still_reads():
    for name in ("checkerboard-vnce", "digits32-ebm-mdsm", "checkerboard-vages-ksd-l5"):
        settings = get_preset(name)
        again = Settings.from_dict(json.loads(json.dumps(settings.to_dict())))
        assert again.fingerprint() == settings.fingerprint()
        assert again.to_dict() == settings.to_dict()
        full = dataclasses.asdict(settings)
        assert Settings.from_dict(full) == settings
    record = get_preset("checkerboard-vages-dsm").to_dict()
    del record["method"]["n_samples"]
    with pytest.raises(SettingsError, match=r"settings miss \['method.n_samples'\]"):
        Settings.from_dict(record)
    with pytest.raises(SettingsError, match="unknown keys"):
        Settings.from_dict({**record, "nope": 1})


def test_the_fingerprint_of_a_run_reading_every_default_is_unchanged():
    """A run whose unread settings are at their defaults keeps the fingerprint of the
    record of every setting (the one runs carried before): it resumes."""
    settings = small_grbm()
    left_out = {"device", "compile", "tensorboard", "data.data_root", "fid.stats", "fid.weights"}
    left_out.add("optimiser.clip_norm")  # new in 0.4.0: runs before it had none
    left_out.add("evaluation.max_posterior_loss")  # new after 0.5.0, likewise
    left_out.add("objective.schedule")  # new in 0.8.0, likewise (at linear)
    every = {
        name: value
        for name, value in settings.items()
        if name not in left_out and not name.startswith("cadence.")
    }
    digest = hashlib.sha256(json.dumps(every, sort_keys=True).encode()).hexdigest()[:16]
    assert settings.fingerprint() == digest
    # A setting the run does not read changes neither its fingerprint nor its record.
    cd = small_grbm("method=cd")
    assert apply_overrides(cd, ["method.n_samples=7"]).fingerprint() == cd.fingerprint()
    assert apply_overrides(cd, ["method.cd_steps=2"]).fingerprint() != cd.fingerprint()


@pytest.mark.parametrize(
    ("key", "nearest"),
    [
        ("lrr", "lr (= optimiser.lr)"),
        ("optimizer.lr", "optimiser.lr"),
        ("sigma", "objective.sigma"),
        ("method.nsamples", "method.n_samples"),
        ("iteration", "iterations (= cadence.iterations)"),
        ("posterior.step", "posterior.steps"),
    ],
)
def test_an_unknown_key_names_the_nearest_setting_or_alias(key, nearest):
    with pytest.raises(SettingsError, match="did you mean ") as caught:
        apply_overrides(Settings(), [f"{key}=1"])
    assert str(caught.value).split("did you mean ")[1].startswith(nearest)


def test_refinement_and_family_rules_come_from_the_declarations():
    with pytest.raises(SettingsError, match="which vages and vaes take; is cannot refine"):
        small_grbm("method=is", "refine_steps=1")
    with pytest.raises(SettingsError, match="no model family trains method cd on cifar10"):
        apply_overrides(get_preset("cifar10-vages-mdsm"), ["method=cd", "refine_steps=0"])
    assert family_of("mnist", method_named("exact")).name == "deep-ebm"
    with pytest.raises(ValueError, match="unknown method 'vagse'; did you mean vages"):
        method_named("vagse")
    with pytest.raises(ValueError, match="must be new"):
        register_method(METHODS["cd"])


def test_a_record_written_before_a_setting_existed_loads_with_its_default():
    """0.3.0's config.json had no optimiser.clip_norm: it loads (clipping off, as the run
    trained), and a record that lacks a setting that always existed is still refused."""
    record = small_grbm().to_dict()
    del record["optimiser"]["clip_norm"]
    assert Settings.from_dict(record) == small_grbm()
    del record["optimiser"]["lr"]
    with pytest.raises(SettingsError, match=r"settings miss \['optimiser.lr'\]"):
        Settings.from_dict(record)


def test_a_checkpoint_fingerprinted_by_0_3_0_is_its_runs():
    """0.3.0 hashed every setting at its value; the deep EBM preset sets posterior.lr,
    which the EBM does not read, so today's fingerprint differs from the one its
    checkpoints carry, and both are accepted. Another run's is not."""
    settings = get_preset("mnist-ebm-mdsm")
    left_out = {"device", "compile", "tensorboard", "data.data_root", "fid.stats", "fid.weights"}
    left_out |= {"optimiser.clip_norm", "cadence.log_every", "cadence.eval_every"}
    left_out |= {"evaluation.max_posterior_loss", "objective.schedule"}
    left_out |= {"cadence.checkpoint_every"}
    every = {name: value for name, value in settings.items() if name not in left_out}
    legacy = hashlib.sha256(json.dumps(every, sort_keys=True).encode()).hexdigest()[:16]
    assert legacy != settings.fingerprint()
    assert settings.is_fingerprint(legacy) and settings.is_fingerprint(settings.fingerprint())
    other = apply_overrides(settings, ["optimiser.lr=3e-4"])
    assert not other.is_fingerprint(legacy) and not settings.is_fingerprint(other.fingerprint())


def test_max_posterior_loss_is_checked_read_by_methods_that_fit_q_and_fingerprinted_when_on():
    for bad in (-1.0, float("inf"), float("nan")):
        with pytest.raises(SettingsError, match=r"evaluation\.max_posterior_loss must be finite"):
            small_grbm().changed(evaluation={"max_posterior_loss": bad})
    settings = small_grbm()
    assert "evaluation.max_posterior_loss" in settings.reads()
    assert "evaluation.max_posterior_loss" not in settings.trajectory()  # 0: off
    watched = apply_overrides(settings, ["evaluation.max_posterior_loss=1e4"])
    assert watched.trajectory()["evaluation.max_posterior_loss"] == 1e4
    assert watched.fingerprint() != settings.fingerprint()
    assert Settings.from_dict(json.loads(json.dumps(watched.to_dict()))) == watched
    record = settings.to_dict()  # a record written before the setting existed
    del record["evaluation"]["max_posterior_loss"]
    assert Settings.from_dict(record) == settings
    cd = small_grbm("method=cd")
    assert "evaluation.max_posterior_loss" not in cd.reads()
    with pytest.raises(SettingsError, match="max_posterior_loss does not apply to a grbm run"):
        apply_overrides(cd, ["evaluation.max_posterior_loss=1"], strict=True)
