"""GRBM runs: every method learns, runs resume exactly, stop clearly on divergence, and
a stack of runs trains each run as it would train alone."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
import torch
from eblvm_testing import small_grbm

from eblvm import RunMismatch, TrainingDiverged, train, train_stack
from eblvm.grbm.task import GRBMTask, estimate_log_partition, mean_log_likelihood
from eblvm.runs import load_checkpoint, read_metrics
from eblvm.step import ContrastiveDivergenceStep, PosteriorFitter, ScoreMatchingStep

SMALL = small_grbm()


def initial_test_log_likelihood(settings) -> float:
    task = GRBMTask(settings)
    model = task.build(settings, torch.Generator().manual_seed(settings.seed)).energy
    log_z = estimate_log_partition(model, settings, seed=0)
    return mean_log_likelihood(model, task.splits.test, log_z.value)


def _theta(run_dir) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoint.pt")["state"]["theta"]


@pytest.mark.parametrize(
    "assignments",
    [
        ["method=vages"],
        ["method=vaes"],
        ["method=vages-cv"],
        ["method=vages-cv", "objective=ksd"],
        ["method=vaes-cv"],
        ["method=is", "objective=ksd"],
        ["method=exact", "objective=ksd"],
        ["method=bism", "n_unroll=2", "n_samples=1"],
        ["method=cd"],
        ["method=pcd"],
        ["method=vages", "objective=ssm", "n_samples=3"],
        ["method=vages", "objective=mdsm", "objective.sigma_min=0.02", "objective.sigma_max=0.1"],
    ],
    ids=lambda a: "-".join(x.split("=")[1] for x in a[:2]),
)
def test_every_method_improves_the_test_log_likelihood(tmp_path, assignments):
    settings = small_grbm("iterations=60", "eval_every=30", "log_every=30", *assignments)
    summary = train(GRBMTask(settings), settings, tmp_path, progress=False)
    assert summary["iterations"] == 60
    assert summary["test_log_likelihood"] > initial_test_log_likelihood(settings) + 0.05
    assert (tmp_path / "density.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows, _ = read_metrics(tmp_path / "metrics.jsonl")
    assert [row["iteration"] for row in rows] == [30, 60]
    assert all({"loss", "grad_norm", "test_log_likelihood"} <= set(row) for row in rows)


def _kill_step_at(call: int, monkeypatch, step_class=ScoreMatchingStep) -> None:
    original = step_class.__call__
    calls = {"n": 0}

    def killed(self, *args):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(step_class, "__call__", killed)


@pytest.mark.parametrize("method", ["vages", "pcd"])
def test_killed_and_resumed_run_ends_like_an_uninterrupted_one(tmp_path, monkeypatch, method):
    """Killed between a checkpoint (every 5) and an evaluation (every 10): the resumed
    run's parameters, optimiser state and metrics rows, losses included, are those of
    the uninterrupted run, bit for bit."""
    settings = small_grbm(f"method={method}")
    task = GRBMTask(settings)
    train(task, settings, tmp_path / "whole", progress=False)
    step_class = ContrastiveDivergenceStep if method == "pcd" else ScoreMatchingStep
    with monkeypatch.context() as patch:
        _kill_step_at(17, patch, step_class)
        with pytest.raises(KeyboardInterrupt):
            train(task, settings, tmp_path / "resumed", progress=False)
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["iteration"] == 15
    summary = train(task, settings, tmp_path / "resumed", progress=False)
    whole = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")["state"]
    resumed = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["state"]
    for part in ("theta", "phi"):
        for name, value in whole[part].items():
            assert torch.equal(resumed[part][name], value), (part, name)
    for name, value in whole["theta_opt"]["variance"].items():
        assert torch.equal(resumed["theta_opt"]["variance"][name], value), name
    assert summary["iterations"] == 30
    rows = {
        name: read_metrics(tmp_path / name / "metrics.jsonl")[0] for name in ("whole", "resumed")
    }
    assert rows["resumed"] == [
        {**r, "seconds": rows["resumed"][i]["seconds"]} for i, r in enumerate(rows["whole"])
    ]
    assert [row["iteration"] for row in rows["resumed"]] == [10, 20, 30]


def test_a_longer_run_continues_a_finished_one(tmp_path):
    task = GRBMTask(SMALL)
    train(task, SMALL, tmp_path / "whole", progress=False)
    short = small_grbm("iterations=20")
    train(task, short, tmp_path / "extended", progress=False)
    train(task, SMALL, tmp_path / "extended", progress=False)
    whole, extended = _theta(tmp_path / "whole"), _theta(tmp_path / "extended")
    for name in whole:
        assert torch.equal(extended[name], whole[name]), name


def test_a_finished_run_is_not_shortened_and_keeps_its_record(tmp_path):
    task = GRBMTask(SMALL)
    train(task, SMALL, tmp_path, progress=False)
    config = (tmp_path / "config.json").read_text()
    with pytest.raises(RunMismatch, match="holds 30 iterations, more than the 20 asked for"):
        train(task, small_grbm("iterations=20"), tmp_path, progress=False)
    assert (tmp_path / "config.json").read_text() == config


def test_divergence_stops_with_the_iteration_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    original = ScoreMatchingStep.__call__
    calls = {"n": 0}

    def nan_at_12(self, *args):
        calls["n"] += 1
        state, info = original(self, *args)
        if calls["n"] == 12:
            info = info._replace(
                finite=torch.zeros_like(info.finite), loss=info.loss * float("nan")
            )
        return state, info

    monkeypatch.setattr(ScoreMatchingStep, "__call__", nan_at_12)
    with pytest.raises(TrainingDiverged, match="iteration 12: loss = nan") as caught:
        train(GRBMTask(SMALL), SMALL, tmp_path, progress=False)
    assert caught.value.iteration == 12
    kept = load_checkpoint(tmp_path / "checkpoint.pt")
    assert kept["iteration"] == 10
    assert all(torch.isfinite(p).all() for p in kept["state"]["theta"].values())
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["diverged"] == {"iteration": 12, "reason": "loss = nan"}


def _posterior_loss_from(monkeypatch, iteration: int, value: float) -> None:
    """From fit number ``iteration`` on, the fit reports the posterior loss ``value``
    (its φ as fitted): q's divergence as the step reports it, the objective untouched."""
    original = PosteriorFitter.fit
    calls = {"n": 0}

    def reported(self, *args):
        calls["n"] += 1
        phi, opt_state, last = original(self, *args)
        if calls["n"] >= iteration:
            last = torch.full_like(last, value)
        return phi, opt_state, last

    monkeypatch.setattr(PosteriorFitter, "fit", reported)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_posterior_loss_stops_the_run_naming_it(tmp_path, monkeypatch, value):
    _posterior_loss_from(monkeypatch, 12, value)
    with pytest.raises(
        TrainingDiverged, match=f"iteration 12: posterior_loss = {value};"
    ) as caught:
        train(GRBMTask(SMALL), SMALL, tmp_path, progress=False)
    assert caught.value.iteration == 12
    assert load_checkpoint(tmp_path / "checkpoint.pt")["iteration"] == 10
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["diverged"] == {"iteration": 12, "reason": f"posterior_loss = {value}"}


def test_a_stack_run_whose_posterior_loss_is_not_finite_stops_alone(tmp_path, monkeypatch):
    original = PosteriorFitter.fit

    def second_run_nan_from_7(self, *args):
        phi, opt_state, last = original(self, *args)
        if int(args[5]) >= 7:  # the iteration
            last = last.clone()
            last[1] = float("nan")
        return phi, opt_state, last

    monkeypatch.setattr(PosteriorFitter, "fit", second_run_nan_from_7)
    settings = small_grbm("iterations=20")
    runs = [(dataclasses.replace(settings, seed=s), tmp_path / f"s{s}") for s in (0, 1)]
    summaries = train_stack(GRBMTask(settings), runs, progress=False)
    assert summaries[0]["iterations"] == 20 and "diverged" not in summaries[0]
    assert summaries[1]["diverged"] == {"iteration": 7, "reason": "posterior_loss = nan"}


def test_a_mean_posterior_loss_above_max_posterior_loss_stops_the_run(tmp_path, monkeypatch):
    _posterior_loss_from(monkeypatch, 1, 5e4)
    watched = small_grbm("evaluation.max_posterior_loss=1e4")
    reason = "mean posterior loss 5e+04 above evaluation.max_posterior_loss"
    with pytest.raises(TrainingDiverged, match=re.escape(f"iteration 10: {reason};")):
        train(GRBMTask(watched), watched, tmp_path / "watched", progress=False)
    rows, _ = read_metrics(tmp_path / "watched" / "metrics.jsonl")
    assert rows[-1] == {"iteration": 10, "diverged": reason}
    # Off by default, and a bound above the loss lets the run finish.
    assert SMALL.evaluation.max_posterior_loss == 0
    above = small_grbm("evaluation.max_posterior_loss=1e5")
    for name, settings in (("default", SMALL), ("above", above)):
        summary = train(GRBMTask(settings), settings, tmp_path / name, progress=False)
        assert summary["iterations"] == 30 and "diverged" not in summary


def test_a_real_non_finite_loss_is_caught(tmp_path):
    settings = small_grbm("lr=1e6", "posterior_lr=1e6", "dsm_sigma=1e-4", "iterations=200")
    with pytest.raises(TrainingDiverged, match="training diverged at iteration"):
        train(GRBMTask(settings), settings, tmp_path, progress=False)


def test_a_large_but_finite_blow_up_stops_as_diverged(tmp_path):
    """lr = 10: finite losses of 1e17 and a log-likelihood of −5e50 are a divergence."""
    settings = small_grbm(
        "lr=10", "posterior_lr=10", "iterations=300", "eval_every=100", "log_every=100"
    )
    with pytest.raises(TrainingDiverged, match=r"above evaluation.max_loss|fell more than"):
        train(GRBMTask(settings), settings, tmp_path, progress=False)


def test_a_folder_with_another_run_is_refused_naming_the_differences(tmp_path):
    task = GRBMTask(SMALL)
    train(task, small_grbm("iterations=5"), tmp_path, progress=False)
    with pytest.raises(RunMismatch, match="seed: 0 there, 1 here"):
        train(task, small_grbm("iterations=5", "seed=1"), tmp_path, progress=False)


def test_another_cadence_resumes_the_same_run(tmp_path):
    task = GRBMTask(SMALL)
    train(task, small_grbm("iterations=10"), tmp_path, progress=False)
    summary = train(
        task, small_grbm("checkpoint_every=3", "eval_every=15"), tmp_path, progress=False
    )
    assert summary["iterations"] == 30


def test_ais_agrees_with_exact_log_z_on_a_checkerboard_trained_grbm(tmp_path):
    """AIS (the evaluation used when h is too large to enumerate) against enumeration,
    on a GRBM with h = 12 trained on checkerboard rather than drawn at random."""
    settings = small_grbm("h_dim=12", "iterations=100", "eval_every=100")
    task = GRBMTask(settings)
    train(task, settings, tmp_path, progress=False)
    model = task.build(settings, torch.Generator()).energy
    model.load_state_dict(_theta(tmp_path))
    exact = estimate_log_partition(model, settings, seed=0)
    ais = estimate_log_partition(
        model,
        settings.changed(evaluation={"log_z": "ais", "ais_chains": 1000, "ais_steps": 500}),
        seed=0,
    )
    assert exact.method == "exact" and ais.method == "ais"
    assert abs(ais.value - exact.value) < 0.05


@pytest.mark.parametrize("method", ["vages", "cd"])
def test_a_run_in_a_stack_trains_as_it_trains_alone(tmp_path, method):
    """Seeds 0 and 1 as one stack, and seed 1 alone: the same data order and draws, so
    the same parameters within float rounding, and the same files."""
    settings = small_grbm(f"method={method}", "iterations=20")
    task = GRBMTask(settings)
    runs = [(dataclasses.replace(settings, seed=s), tmp_path / f"stack{s}") for s in (0, 1)]
    summaries = train_stack(task, runs, progress=False)
    assert [s["stacked_runs"] for s in summaries] == [2, 2]
    alone = train(task, dataclasses.replace(settings, seed=1), tmp_path / "alone", progress=False)
    stacked, single = _theta(tmp_path / "stack1"), _theta(tmp_path / "alone")
    for name in single:
        torch.testing.assert_close(stacked[name], single[name], rtol=1e-5, atol=1e-6)
    assert summaries[1]["test_log_likelihood"] == pytest.approx(
        alone["test_log_likelihood"], abs=1e-4
    )
    assert sorted(p.name for p in (tmp_path / "stack1").iterdir()) == sorted(
        p.name for p in (tmp_path / "alone").iterdir()
    )


def test_a_stack_resumes_and_one_diverging_run_stops_alone(tmp_path, monkeypatch):
    settings = small_grbm("iterations=20")
    task = GRBMTask(settings)
    runs = [(dataclasses.replace(settings, seed=s), tmp_path / f"s{s}") for s in (0, 1)]
    original = ScoreMatchingStep.__call__

    def second_run_diverges_at_7(self, state, v, noise, iteration):
        new_state, info = original(self, state, v, noise, iteration)
        if int(iteration) >= 7:
            finite = info.finite.clone()
            finite[1] = False
            info = info._replace(finite=finite)
        return new_state, info

    with monkeypatch.context() as patch:
        patch.setattr(ScoreMatchingStep, "__call__", second_run_diverges_at_7)
        summaries = train_stack(task, runs, progress=False)
    assert summaries[0]["iterations"] == 20 and "diverged" not in summaries[0]
    assert summaries[1]["diverged"]["iteration"] == 7
    assert load_checkpoint(tmp_path / "s1" / "checkpoint.pt")["iteration"] == 5
    longer = [
        (dataclasses.replace(s, cadence=dataclasses.replace(s.cadence, iterations=25)), out)
        for s, out in runs[:1]
    ]
    assert train_stack(task, longer, progress=False)[0]["iterations"] == 25


def test_runs_of_other_shapes_are_not_stacked(tmp_path):
    task = GRBMTask(SMALL)
    with pytest.raises(ValueError, match="differ only in seed and learning rates"):
        train_stack(
            task,
            [(SMALL, tmp_path / "a"), (small_grbm("n_samples=3"), tmp_path / "b")],
            progress=False,
        )
