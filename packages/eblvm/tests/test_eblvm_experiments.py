"""The appendix F.3 and F.4 drivers: their reports, figures and the numbers in them."""

from __future__ import annotations

import json

import pytest

from eblvm.experiments.bias import run_bias_experiment, write_bias_report
from eblvm.experiments.fisher import FisherRow, format_fisher_table, run_fisher_experiment
from eblvm_eval import BiasRow


def test_report_is_written_atomically(tmp_path):
    rows = [BiasRow("grbm", "kl", x, x**2, x, 2 * x) for x in (0.1, 0.2, 0.4)]
    json_path, png_path = write_bias_report(rows, tmp_path / "out")
    report = json.loads(json_path.read_text())
    assert [BiasRow(**r) for r in report["rows"]] == rows
    assert {(f["estimator"], round(f["slope"], 9)) for f in report["fits"]} == {
        ("vaes", 1.0),
        ("vages", 1.0),
    }
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["bias.json", "bias.png"]


def test_quick_bias_experiment_shows_bias_of_order_root_divergence(tmp_path):
    rows = run_bias_experiment(tmp_path, quick=True, seed=1)
    assert {(r.model, r.divergence_name) for r in rows} == {
        ("grbm", "kl"),
        ("gaussian", "fisher"),
        ("gaussian", "kl"),
    }
    report = json.loads((tmp_path / "bias.json").read_text())
    assert len(report["rows"]) == len(rows) == 7 * 3
    for fit in report["fits"]:
        assert 0.9 < fit["slope"] < 1.1, fit
    assert (tmp_path / "bias.png").exists()


def test_quick_fisher_experiment_writes_its_report(tmp_path):
    rows = run_fisher_experiment(tmp_path, quick=True, levels=(0.0, 1.0))
    assert [(r.v_dim, r.level) for r in rows] == [(10, 0.0), (10, 1.0)]
    assert rows[0].exact == 0.0 and abs(rows[0].learned) < 0.05
    assert rows[1].exact > 1 and abs(rows[1].learned - rows[1].exact) < 0.3 * rows[1].exact
    assert [FisherRow(**r) for r in json.loads((tmp_path / "fisher.json").read_text())] == rows
    assert (tmp_path / "fisher.md").read_text() == format_fisher_table(rows) + "\n"
    assert (tmp_path / "fisher.png").read_bytes()[:4] == b"\x89PNG"


def test_fisher_table_reports_the_relative_error():
    rows = [
        FisherRow(200, 0.0, 0.0, 0.0, 0.01, 0.02, 0.0),
        FisherRow(500, 0.4, 2.0, 0.01, 1.8, 0.05, 0.001),
    ]
    lines = format_fisher_table(rows).splitlines()
    assert len(lines) == 4
    assert lines[2].split("|")[5].strip() == "n/a"
    assert lines[3].split("|")[5].strip() == "-10.0%"


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="dims must be a positive integer"):
        run_fisher_experiment(tmp_path, dims=(0,))
    with pytest.raises(TypeError, match="quick must be a bool"):
        run_bias_experiment(tmp_path, quick=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rows must be a non-empty"):
        write_bias_report([], tmp_path)
    assert not any(tmp_path.iterdir())
