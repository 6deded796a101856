"""`eblvm reproduce`: the verdict rules, and a smoke run at a tiny scale whose report must
name every claim with one verdict line, link figures that exist, and resume without
training again."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from eblvm.cli import main
from eblvm.experiments.claims import (
    CLAIMS,
    NOT_RUN,
    QUICK,
    Context,
    Scale,
    frey_dataset,
    measure_sample_quality,
)
from eblvm.experiments.reproduce import REPORT, format_report, reproduce
from eblvm.experiments.verdicts import Measured, better, not_worse, similar, verdict

TINY = Scale(
    name="tiny",
    seeds=2,
    iterations=20,
    eval_every=10,
    compile="off",
    digits_seeds=2,
    digits_iterations=10,
    digits_eval_every=10,
    ais_chains=10,
    ais_steps=10,
    fisher_quick=True,
    fisher_levels=(0.0, 0.5),
    bias_quick=True,
    deep_warmup=1,
    deep_timed=1,
    jobs=1,
    minutes={},
    n_train=500,
    fisher_dims=(4,),
    deep_presets=("random-vages-mdsm", "random-ebm-mdsm"),
    deep_overrides=(
        "base_width=8",
        "model.blocks_per_stage=1",
        "posterior_width=8",
        "batch_size=4",
        "n_train=16",
        "image_size=8",
    ),
)
# Claims of every kind: a checkerboard comparison with two panels, the Frey-face
# protocol (on the digits: no Frey file here), the F.3 and F.4 drivers, the deep timing.
SMOKE = ["H", "frey", "F.3", "F.4", "G.2.2-time"]
VERDICT_LINE = re.compile(r"^\*\*Verdict:\*\* (holds|does not hold \(.+\)|not run here: .+)$")


# ----------------------------------------------------------------------------- rules


def test_similar_allows_two_pooled_standard_errors_or_a_hundredth_of_a_nat():
    a = Measured(0.30, 0.03, 9)  # pooled standard error with b or c: 0.01414
    assert similar("x", a, Measured(0.325, 0.03, 9)).holds
    assert not similar("x", a, Measured(0.33, 0.03, 9)).holds
    assert not similar("x", Measured(0.30, 0.0, 9), Measured(0.32, 0.0, 9)).holds
    assert similar("x", Measured(0.30, 0.0, 9), Measured(0.309, 0.0, 9)).holds


def test_better_needs_more_than_two_pooled_standard_errors():
    assert better("x", Measured(0.33, 0.03, 9), Measured(0.30, 0.03, 9)).holds
    assert not better("x", Measured(0.32, 0.03, 9), Measured(0.30, 0.03, 9)).holds
    assert not better("x", Measured(0.30, 0.0, 9), Measured(0.30, 0.0, 9)).holds


def test_not_worse_and_the_verdict_naming_failed_checks():
    assert not_worse("x", Measured(0.295, 0.0, 3), Measured(0.30, 0.0, 3)).holds
    assert not not_worse("x", Measured(0.28, 0.0, 3), Measured(0.30, 0.0, 3)).holds
    checks = [
        similar("close", Measured(0.3, 0.0, 3), Measured(0.3, 0.0, 3)),
        better("ahead", Measured(0.3, 0.0, 3), Measured(0.3, 0.0, 3)),
    ]
    assert verdict(checks[:1]) == "holds"
    assert verdict(checks) == "does not hold (1 of 2 checks fail: ahead)"


# ----------------------------------------------------------------------------- smoke run


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("reproduce")
    records = reproduce(out, only=SMOKE, scale=TINY, frey_root=out / "no-frey", progress=False)
    return out, records


def _files(out: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != REPORT}


def test_report_names_every_claim_with_one_verdict_line(smoke):
    out, records = smoke
    report = (out / REPORT).read_text()
    for claim in CLAIMS:
        assert f"## {claim.key}: {claim.title}" in report
    lines = [line for line in report.splitlines() if line.startswith("**Verdict:**")]
    assert len(lines) == len(CLAIMS)
    assert all(VERDICT_LINE.match(line) for line in lines), lines
    by_key = {record["key"]: record for record in records}
    for key in SMOKE:
        assert by_key[key]["verdict"].split(" (")[0] in ("holds", "does not hold"), key
    assert by_key["F.1"]["verdict"].startswith(f"{NOT_RUN}: not measured yet")
    assert by_key["G.2.2-cifar10"]["verdict"].startswith(f"{NOT_RUN}: not measured yet")
    assert "## Environment" in report and "torch " in report
    assert f"Command: `eblvm reproduce --out {out}`." in report  # how to run it again


def test_figures_exist_and_are_linked_relatively(smoke):
    out, records = smoke
    report = (out / REPORT).read_text()
    figures = [f for record in records for f in record["figures"]]
    assert len(figures) >= 4
    for figure in figures:
        assert not Path(figure).is_absolute()
        assert (out / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({figure})" in report
    assert "digits400/frey-protocol.png" in figures
    assert "bundled 8×8 digits" in {r["key"]: r for r in records}["frey"]["setting"]


def test_rerun_measures_nothing_again(smoke):
    out, records = smoke
    before = _files(out)
    again = reproduce(out, only=SMOKE, scale=TINY, frey_root=out / "no-frey", progress=False)
    assert again == records
    assert _files(out) == before


def test_a_claim_measured_again_reuses_its_finished_runs(smoke):
    out, records = smoke
    checkpoints = {p: p.stat().st_mtime_ns for p in (out / "checkerboard").rglob("checkpoint.pt")}
    assert len(checkpoints) == 6 * TINY.seeds
    (out / "claims" / "H.json").unlink()
    again = reproduce(out, only=["H"], scale=TINY, progress=False)
    record = {r["key"]: r for r in again}["H"]
    assert record["verdict"] == {r["key"]: r for r in records}["H"]["verdict"]
    assert record["measured"] == {r["key"]: r for r in records}["H"]["measured"]
    assert {p: p.stat().st_mtime_ns for p in checkpoints} == checkpoints


def test_a_folder_of_another_scale_is_refused(smoke):
    out, _ = smoke
    with pytest.raises(ValueError, match="scale 'tiny', not 'quick'"):
        reproduce(out, quick=True, progress=False)


# ----------------------------------------------------------------------------- pieces


def test_a_claim_not_run_here_keeps_its_reason_through_other_calls(smoke):
    out, _ = smoke
    (record,) = [
        r
        for r in reproduce(out, only=["G.2.2-cifar10"], scale=TINY, progress=False)
        if r["key"] == "G.2.2-cifar10"
    ]
    assert record["verdict"].startswith(f"{NOT_RUN}: needs a GPU")
    again = {r["key"]: r for r in reproduce(out, only=["H"], scale=TINY, progress=False)}
    assert again["G.2.2-cifar10"]["verdict"] == record["verdict"]
    assert record["verdict"] in (out / REPORT).read_text()


def test_quick_verdicts_are_marked(tmp_path):
    records = {
        claim.key: {
            "key": claim.key,
            "verdict": "holds" if i % 2 else f"{NOT_RUN}: needs a GPU",
            "setting": "",
            "measured": "",
            "figures": [],
            "minutes": 0.5,
        }
        for i, claim in enumerate(CLAIMS)
    }
    report = format_report(tmp_path, QUICK, records)
    lines = [line for line in report.splitlines() if line.startswith("**Verdict:**")]
    assert len(lines) == len(CLAIMS)
    assert sum(line.endswith("holds (quick)") for line in lines) == len(CLAIMS) // 2
    assert sum(line.endswith("needs a GPU (quick)") for line in lines) == (len(CLAIMS) + 1) // 2


def test_frey_face_is_used_when_its_file_is_there(tmp_path):
    assert frey_dataset(tmp_path) == "digits400"
    (tmp_path / "frey_rawface.mat").write_bytes(b"")
    assert frey_dataset(tmp_path) == "frey"


def _evaluation(run: Path, metric: str, value: float, std: float | None) -> None:
    run.mkdir(parents=True, exist_ok=True)
    record = {"metric": metric, "value": value, "std": std, "n": 100, "iteration": 500}
    (run / f"evaluation-{metric}.json").write_text(json.dumps(record))


def test_sample_quality_reads_the_deep_runs_evaluations(tmp_path):
    context = Context(tmp_path / "out", QUICK, tmp_path, deep_runs=None)
    assert measure_sample_quality(context).verdict.startswith(f"{NOT_RUN}: needs finished")
    runs = tmp_path / "runs"
    _evaluation(runs / "fashion-vages-mdsm", "classifier-fid", 0.5, None)
    _evaluation(runs / "fashion-ebm-mdsm", "classifier-fid", 0.7, None)
    _evaluation(runs / "fashion-vages-mdsm", "classifier-score", 5.0, 0.1)
    _evaluation(runs / "fashion-ebm-mdsm", "classifier-score", 4.9, 0.1)
    context = Context(tmp_path / "out", QUICK, tmp_path, deep_runs=runs)
    outcome = measure_sample_quality(context)
    assert outcome.verdict == (
        "does not hold (1 of 2 checks fail: EBLVM better than EBM by classifier-score)"
    )
    assert "0.5000 against 0.7000" in outcome.measured


def test_cli_refuses_an_unknown_claim_in_one_line(tmp_path, capsys):
    assert main(["reproduce", "--out", str(tmp_path / "r"), "--only", "F.9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("eblvm: error: --only names unknown claims ['F.9']")
    assert "\n" not in err
