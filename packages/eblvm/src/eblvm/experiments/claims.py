"""The paper's claims that ``eblvm reproduce`` decides: each one declared once (its
statement, where the paper makes it, the rule that decides it) with the function that
measures it at a ``Scale``.

Every measurement reuses the drivers of ``eblvm.experiments``: the checkerboard and
Frey-face claims are ``compare`` calls (stacked, compiled runs whose folders resume),
F.3 and F.4 the appendix drivers, the deep timing short runs of the trainer itself.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from eblvm.experiments.compare import compare, format_table
from eblvm.experiments.verdicts import (
    BETTER_RULE,
    NOT_WORSE_RULE,
    SIMILAR_RULE,
    Check,
    Measured,
    better,
    checks_table,
    not_worse,
    similar,
    verdict,
    within,
)
from eblvm.settings import apply_overrides

NOT_RUN = "not run here"
PAPER_SEEDS = 10
PAPER_TIME_RATIO = 2.8
TIME_RATIO_RANGE = (2.0, 3.6)  # "about 2.8×": within 30 % of it
MIN_SLOPE = 0.9  # bias vanishing at least as fast as sqrt(divergence), within fitting noise
FISHER_RELATIVE = 0.1


@dataclasses.dataclass(frozen=True)
class Scale:
    """How much of each experiment a reproduction runs. ``name`` is recorded in the
    output folder: a folder holds one scale's runs."""

    name: str
    seeds: int  # checkerboard
    iterations: int
    eval_every: int
    compile: str
    digits_seeds: int  # the Frey-face protocol
    digits_iterations: int
    digits_eval_every: int
    ais_chains: int
    ais_steps: int
    fisher_quick: bool
    fisher_levels: tuple[float, ...]
    bias_quick: bool
    deep_warmup: int
    deep_timed: int
    jobs: int
    minutes: Mapping[str, float]  # estimated minutes per claim, for the progress lines
    mark: str = ""  # appended to every verdict measured at this scale, e.g. "quick"
    n_train: int | None = None  # checkerboard training points (None: the presets')
    fisher_dims: tuple[int, ...] | None = None
    deep_presets: tuple[str, str] = ("fashion-vages-mdsm", "fashion-ebm-mdsm")
    deep_overrides: tuple[str, ...] = ()


FULL = Scale(
    name="full",
    seeds=PAPER_SEEDS,
    iterations=100_000,
    eval_every=5000,
    compile="auto",
    digits_seeds=3,
    digits_iterations=20_000,
    digits_eval_every=5000,
    ais_chains=2000,
    ais_steps=2000,
    fisher_quick=False,
    fisher_levels=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    bias_quick=False,
    deep_warmup=3,
    deep_timed=10,
    jobs=2,
    minutes={"F.1": 18, "F.2": 9, "H": 5, "frey": 14, "F.3": 8, "F.4": 2, "G.2.2-time": 3},
)
QUICK = Scale(
    name="quick",
    seeds=3,
    iterations=2000,
    eval_every=500,
    compile="off",
    digits_seeds=2,
    digits_iterations=1000,
    digits_eval_every=500,
    ais_chains=200,
    ais_steps=200,
    fisher_quick=True,
    fisher_levels=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    bias_quick=True,
    deep_warmup=1,
    deep_timed=2,
    jobs=2,
    mark="quick",
    minutes={"F.1": 2.5, "F.2": 1.5, "H": 0.7, "frey": 1, "F.3": 0.7, "F.4": 0.3, "G.2.2-time": 1},
)


@dataclasses.dataclass(frozen=True)
class Context:
    """Where a claim writes (``out``, the reproduction's folder), at which scale, and the
    inputs given from outside: the Frey face's folder, the folder of finished deep runs."""

    out: Path
    scale: Scale
    frey_root: Path
    deep_runs: Path | None


@dataclasses.dataclass(frozen=True)
class Outcome:
    """A claim measured: the verdict line, the setting as run, the numbers (Markdown) and
    the figures (paths relative to the reproduction's folder)."""

    verdict: str
    setting: str
    measured: str
    figures: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Claim:
    key: str
    title: str
    source: str
    statement: str
    rule: str
    measure: Callable[[Context], Outcome]


# ----------------------------------------------------------------------------- checkerboard

KSD_FAMILY = (
    "checkerboard-vages-ksd-l2",
    "checkerboard-vages-ksd-l5",
    "checkerboard-vages-ksd-l10",
    "checkerboard-ksd",
    "checkerboard-is-ksd-l2",
    "checkerboard-is-ksd-l5",
    "checkerboard-is-ksd-l10",
)
DSM_FAMILY = (
    "checkerboard-vages-dsm",
    "checkerboard-dsm",
    "checkerboard-cd",
    "checkerboard-pcd",
    "checkerboard-bism-dsm-n2",
    "checkerboard-bism-dsm-n5",
    "checkerboard-nce",
    "checkerboard-vnce",
)
CV_DSM = ("checkerboard-vages-dsm", "checkerboard-vages-cv-dsm", "checkerboard-dsm")
CV_KSD = ("checkerboard-vages-ksd-l2", "checkerboard-vages-cv-ksd-l2", "checkerboard-ksd")
EARLY_FRACTION = 0.2  # "converges faster": the mean curve at a fifth of training


def _cadence(iterations: int, every: int) -> list[str]:
    return [
        f"iterations={iterations}",
        f"eval_every={every}",
        f"log_every={every}",
        f"checkpoint_every={every}",
    ]


def _compared(
    ctx: Context,
    folder: str,
    presets: Sequence[str],
    overrides: Sequence[str],
    seeds: int,
    panels: Mapping[str, Sequence[str]],
    stem: str,
) -> tuple[dict[str, dict[str, Any]], str, str]:
    """``compare`` of the presets in ``ctx.out/folder`` (runs shared by the claims that
    name the same preset); the rows by preset, the table and the figure's path."""
    from eblvm.presets import get_preset

    configs = {name: apply_overrides(get_preset(name), list(overrides)) for name in presets}
    rows = compare(
        configs,
        ctx.out / folder,
        seeds=list(range(seeds)),
        progress=False,
        jobs=ctx.scale.jobs,
        panels=panels,
        stem=stem,
    )
    return {row["method"]: row for row in rows}, format_table(rows), f"{folder}/{stem}.png"


def _checkerboard(
    ctx: Context, presets: Sequence[str], panels: Mapping[str, Sequence[str]], stem: str
) -> tuple[dict[str, dict[str, Any]], str, str]:
    s = ctx.scale
    overrides = [*_cadence(s.iterations, s.eval_every), f"compile={s.compile}"]
    if s.n_train is not None:
        overrides.append(f"n_train={s.n_train}")
    return _compared(ctx, "checkerboard", presets, overrides, s.seeds, panels, stem)


def _checkerboard_setting(scale: Scale) -> str:
    setting = (
        f"{scale.seeds} seeds × {scale.iterations} iterations, test log-likelihood by exact "
        f"log Z every {scale.eval_every} (paper: {PAPER_SEEDS} seeds × 100000, AIS)"
    )
    if scale.seeds < PAPER_SEEDS or scale.iterations < 100_000:
        setting += "; fewer seeds or iterations than the paper's"
    return setting


def _final(row: dict[str, Any]) -> Measured | None:
    if "test_log_likelihood_mean" not in row:
        return None
    return Measured(
        row["test_log_likelihood_mean"],
        row["test_log_likelihood_std"],
        row["seeds"] - len(row["failures"]),
    )


def _compare_check(
    rule: Callable[[str, Measured, Measured], Check],
    name: str,
    a: Measured | None,
    b: Measured | None,
) -> Check:
    if a is None or b is None:
        return Check(name, False, "every run of one side diverged")
    return rule(name, a, b)


def _short(preset: str) -> str:
    return preset.removeprefix("checkerboard-")


def _measured(checks: Sequence[Check], table: str) -> str:
    return f"{table}\n{checks_table(checks)}\n"


def measure_ksd(ctx: Context) -> Outcome:
    rows, table, figure = _checkerboard(ctx, KSD_FAMILY, {"KSD family": KSD_FAMILY}, "fig3-ksd")
    final = {name: _final(row) for name, row in rows.items()}
    checks = []
    for samples in (2, 5, 10):
        ours = final[f"checkerboard-vages-ksd-l{samples}"]
        checks.append(
            _compare_check(
                similar, f"VaGES-KSD L={samples} similar to KSD", ours, final["checkerboard-ksd"]
            )
        )
        checks.append(
            _compare_check(
                better,
                f"VaGES-KSD L={samples} better than IS-KSD L={samples}",
                ours,
                final[f"checkerboard-is-ksd-l{samples}"],
            )
        )
    return Outcome(
        verdict(checks), _checkerboard_setting(ctx.scale), _measured(checks, table), (figure,)
    )


def _early(row: dict[str, Any], at: int) -> tuple[Measured, int] | None:
    """The mean curve at the first evaluation at or after iteration ``at``."""
    curve = row.get("curve")
    if not curve:
        return None
    for index, iteration in enumerate(curve["iteration"]):
        if iteration >= at:
            n = row["seeds"] - len(row["failures"])
            return Measured(curve["mean"][index], curve["std"][index], n), iteration
    return None


def measure_dsm(ctx: Context) -> Outcome:
    rows, table, figure = _checkerboard(ctx, DSM_FAMILY, {"DSM family": DSM_FAMILY}, "fig3-dsm")
    final = {name: _final(row) for name, row in rows.items()}
    ours = final["checkerboard-vages-dsm"]
    checks = [
        _compare_check(similar, f"VaGES-DSM similar to {_short(name)}", ours, final[name])
        for name in DSM_FAMILY[1:3] + DSM_FAMILY[4:6]
    ]
    checks += [
        _compare_check(better, f"VaGES-DSM better than {_short(name)}", ours, final[name])
        for name in ("checkerboard-pcd", "checkerboard-nce", "checkerboard-vnce")
    ]
    at = max(1, int(EARLY_FRACTION * ctx.scale.iterations))
    early = _early(rows["checkerboard-vages-dsm"], at)
    for name in ("checkerboard-bism-dsm-n2", "checkerboard-bism-dsm-n5"):
        theirs = _early(rows[name], at)
        label = f"VaGES-DSM ahead of {_short(name)} early"
        if early is None or theirs is None:
            checks.append(Check(label, False, "no evaluation that early"))
            continue
        check = better(label, early[0], theirs[0])
        checks.append(
            check._replace(detail=f"at {early[1]}: {early[0]} against {theirs[0]}, {check.detail}")
        )
    return Outcome(
        verdict(checks), _checkerboard_setting(ctx.scale), _measured(checks, table), (figure,)
    )


def measure_control_variate(ctx: Context) -> Outcome:
    panels = {"DSM family": CV_DSM, "KSD family": CV_KSD}
    rows, table, figure = _checkerboard(ctx, CV_DSM + CV_KSD, panels, "fig7-control-variate")
    final = {name: _final(row) for name, row in rows.items()}
    checks = [
        _compare_check(
            similar,
            "VaGES-DSM with the control variate similar to without",
            final["checkerboard-vages-cv-dsm"],
            final["checkerboard-vages-dsm"],
        ),
        _compare_check(
            not_worse,
            "VaGES-KSD L=2 with the control variate not worse than without",
            final["checkerboard-vages-cv-ksd-l2"],
            final["checkerboard-vages-ksd-l2"],
        ),
    ]
    return Outcome(
        verdict(checks), _checkerboard_setting(ctx.scale), _measured(checks, table), (figure,)
    )


# ----------------------------------------------------------------------------- Frey face


def frey_dataset(frey_root: Path) -> str:
    """``frey`` when the Frey face's file is in ``frey_root``, else ``digits400`` (the
    bundled digits under the same protocol)."""
    from eblvm_data.frey_face import FREY_FACE_FILE

    return "frey" if (frey_root / FREY_FACE_FILE).is_file() else "digits400"


def measure_frey(ctx: Context) -> Outcome:
    s = ctx.scale
    prefix = frey_dataset(ctx.frey_root)
    presets = tuple(f"{prefix}-{method}" for method in ("vages-dsm", "bism-dsm-n5", "dsm"))
    overrides = [
        *_cadence(s.digits_iterations, s.digits_eval_every),
        f"evaluation.ais_chains={s.ais_chains}",
        f"evaluation.ais_steps={s.ais_steps}",
        f"compile={s.compile}",
    ]
    if prefix == "frey":
        overrides.append(f"data_root={ctx.frey_root}")
    rows, table, figure = _compared(
        ctx,
        prefix,
        presets,
        overrides,
        s.digits_seeds,
        {f"{prefix}, h = 400": presets},
        "frey-protocol",
    )
    final = {name: _final(row) for name, row in rows.items()}
    checks = [
        _compare_check(
            similar, "VaGES-DSM similar to BiDSM N=5", final[presets[0]], final[presets[1]]
        )
    ]
    data = (
        f"the real Frey face ({ctx.frey_root})"
        if prefix == "frey"
        else f"the bundled 8×8 digits (the Frey face file is not in {ctx.frey_root})"
    )
    setting = (
        f"on {data}: h = 400, {s.digits_seeds} seeds × {s.digits_iterations} iterations, "
        f"selected by validation log-likelihood, AIS {s.ais_chains} chains × {s.ais_steps} "
        f"steps every {s.digits_eval_every} (paper: Frey face, 20000 iterations, AIS 2000 × "
        "2000)"
    )
    return Outcome(verdict(checks), setting, _measured(checks, table), (figure,))


# ----------------------------------------------------------------------------- F.3, F.4


def measure_fisher(ctx: Context) -> Outcome:
    from eblvm.experiments.fisher import format_fisher_table, run_fisher_experiment

    s = ctx.scale
    rows = run_fisher_experiment(
        ctx.out / "fisher", quick=s.fisher_quick, dims=s.fisher_dims, levels=s.fisher_levels
    )
    checks = []
    for row in rows:
        stderr = (row.exact_stderr**2 + row.learned_stderr**2) ** 0.5
        allowed = max(2 * stderr, FISHER_RELATIVE * row.exact)
        gap = abs(row.learned - row.exact)
        checks.append(
            Check(
                f"D = {row.v_dim}, level {row.level:.1f}",
                gap <= allowed,
                f"gap {gap:.4f}, allowed {allowed:.4f}",
            )
        )
    dims = sorted({row.v_dim for row in rows})
    sizes = (
        "the quick sizes (H = 10, a critic of width 32, 300 steps)"
        if s.fisher_quick
        else "H = 50, a critic of width 128, 2000 steps"
    )
    setting = f"{sizes}, D in {dims}, perturbation levels {list(s.fisher_levels)}"
    measured = f"{format_fisher_table(rows)}\n\n{checks_table(checks)}\n"
    return Outcome(verdict(checks), setting, measured, ("fisher/fisher.png",))


def measure_bias(ctx: Context) -> Outcome:
    from eblvm.experiments.bias import run_bias_experiment
    from eblvm_eval import fit_bias_slopes

    quick = ctx.scale.bias_quick
    rows = run_bias_experiment(ctx.out / "bias", quick=quick)
    checks = [
        Check(
            f"{fit.model} {fit.divergence_name} {fit.estimator}",
            fit.slope >= MIN_SLOPE,
            f"slope {fit.slope:.3f} over {fit.n_points} points, max bias/√divergence "
            f"{fit.max_ratio:.3g}",
        )
        for fit in fit_bias_slopes(rows)
    ]
    setting = (
        "D = 10, H = 50, 7 noise levels" if quick else "D = 50, H = 400 (the paper's), 11 levels"
    ) + "; float64; v one draw of the model"
    return Outcome(verdict(checks), setting, checks_table(checks) + "\n", ("bias/bias.png",))


# ----------------------------------------------------------------------------- deep models


def seconds_per_iteration(
    preset: str, out: Path, *, warmup: int, timed: int, overrides: Sequence[str] = ()
) -> float:
    """Train ``preset`` eagerly for ``warmup + timed`` iterations in the run folder ``out``
    (resumed if there) and return the mean training seconds of the last ``timed``."""
    from eblvm.loop import train
    from eblvm.presets import get_preset, task_for
    from eblvm.runs import METRICS, read_metrics

    total = warmup + timed
    settings = apply_overrides(
        get_preset(preset),
        [
            f"iterations={total}",
            "log_every=1",
            f"eval_every={total}",
            f"checkpoint_every={total}",
            "compile=off",
            *overrides,
        ],
    )
    train(task_for(settings), settings, out, progress=False)
    rows, _ = read_metrics(out / METRICS)
    seconds = {row["iteration"]: row["seconds"] for row in rows if "seconds" in row}
    return (seconds[total] - seconds[warmup]) / timed


def measure_time_ratio(ctx: Context) -> Outcome:
    import torch

    s = ctx.scale
    eblvm_preset, ebm_preset = s.deep_presets
    setting = (
        f"`{eblvm_preset}` and `{ebm_preset}` eagerly, {s.deep_warmup} warm-up and "
        f"{s.deep_timed} timed iterations each, {torch.get_num_threads()} thread(s) "
        "(paper: CIFAR10 on a GPU, whole trainings)"
    )
    try:
        seconds = {
            preset: seconds_per_iteration(
                preset,
                ctx.out / "deep-time" / preset,
                warmup=s.deep_warmup,
                timed=s.deep_timed,
                overrides=s.deep_overrides,
            )
            for preset in s.deep_presets
        }
    except FileNotFoundError as missing:  # the data set is not on this machine
        return Outcome(f"{NOT_RUN}: needs the data set: {missing}", setting, "")
    ratio = seconds[eblvm_preset] / seconds[ebm_preset]
    checks = [
        within(f"EBLVM/EBM time per iteration about {PAPER_TIME_RATIO}×", ratio, *TIME_RATIO_RANGE)
    ]
    measured = (
        "| preset | seconds per iteration |\n| --- | --- |\n"
        + "".join(f"| `{preset}` | {value:.3f} |\n" for preset, value in seconds.items())
        + f"\nratio {ratio:.2f} (paper: {PAPER_TIME_RATIO})\n\n{checks_table(checks)}\n"
    )
    return Outcome(verdict(checks), setting, measured)


QUALITY_METRICS = {  # metric -> whether higher is better
    "classifier-fid": False,
    "classifier-score": True,
    "fid": False,
    "inception-score": True,
}


def _quality_records(run: Path) -> dict[str, dict[str, Any]]:
    """The ``eblvm evaluate`` records in a run folder, by metric."""
    found = {}
    for metric in QUALITY_METRICS:
        path = run / f"evaluation-{metric}.json"
        if path.is_file():
            found[metric] = json.loads(path.read_text())
    return found


def measure_sample_quality(ctx: Context) -> Outcome:
    eblvm_preset, ebm_preset = ctx.scale.deep_presets
    how = (
        f"train `{eblvm_preset}` and `{ebm_preset}` into DIR/{eblvm_preset} and "
        f"DIR/{ebm_preset} (`eblvm train PRESET --out DIR/PRESET`), score each with "
        "`eblvm evaluate RUN --metric classifier-fid --metric classifier-score` (one set of "
        "samples for both), then `eblvm reproduce --deep-runs DIR`"
    )
    if ctx.deep_runs is None:
        return Outcome(f"{NOT_RUN}: needs finished deep runs: {how}", "no --deep-runs given", "")
    records = {p: _quality_records(ctx.deep_runs / p) for p in (eblvm_preset, ebm_preset)}
    shared = [m for m in QUALITY_METRICS if all(m in r for r in records.values())]
    setting = f"the runs in {ctx.deep_runs}"
    if not shared:
        return Outcome(
            f"{NOT_RUN}: no metric evaluated on both runs in {ctx.deep_runs}: {how}", setting, ""
        )
    checks = []
    for metric in shared:
        ours, theirs = records[eblvm_preset][metric], records[ebm_preset][metric]
        sign = 1.0 if QUALITY_METRICS[metric] else -1.0
        margin = 2 * ((ours.get("std") or 0.0) ** 2 + (theirs.get("std") or 0.0) ** 2) ** 0.5
        gap = sign * (ours["value"] - theirs["value"])
        checks.append(
            Check(
                f"EBLVM better than EBM by {metric}",
                gap > margin,
                f"{ours['value']:.4f} against {theirs['value']:.4f} (n = {ours['n']}, "
                f"iterations {ours['iteration']} and {theirs['iteration']}), needed a "
                f"margin > {margin:.4f}",
            )
        )
    return Outcome(verdict(checks), setting, checks_table(checks) + "\n")


def _needs_gpu(dataset: str) -> Callable[[Context], Outcome]:
    def measure(ctx: Context) -> Outcome:
        runs = " and ".join(
            f"`eblvm train {dataset}-{m} --out runs/{dataset}-{m} --set device=cuda`"
            for m in ("vages-mdsm", "ebm-mdsm")
        )
        command = (
            f"{runs}, then `eblvm fid-stats {dataset} --out {dataset}.npz` and `eblvm evaluate "
            f"runs/{dataset}-vages-mdsm --metric fid --metric inception-score --stats "
            f"{dataset}.npz --n 50000`"
        )
        return Outcome(
            f"{NOT_RUN}: needs a GPU: {command}",
            "300000 iterations (paper: 24 min per 2000 iterations on an RTX 2080 Ti, about "
            "60 GPU-hours a run)",
            "",
        )

    return measure


CLAIMS = (
    Claim(
        "F.1",
        "VaGES-KSD against KSD with the exact score and IS-KSD (checkerboard)",
        "appendix F.1 (setting), G.1 (statement); Fig. 2 of the appendix, Fig. 3 (KSD family) here",
        "“Our VaGES-KSD is comparable to the KSD baseline and is better than the IS-KSD "
        "baseline” (L = 2, 5, 10).",
        f"holds when, at every L, VaGES-KSD is similar to KSD and better than IS-KSD at the "
        f"same L, by the final test log-likelihood over seeds. {SIMILAR_RULE}; {BETTER_RULE}.",
        measure_ksd,
    ),
    Claim(
        "F.2",
        "VaGES-DSM against CD, DSM, BiDSM, PCD, NCE and VNCE (checkerboard)",
        "appendix F.2.1 (setting), G.2.1 (statement); Fig. 3 (DSM family)",
        "“The result of VaGES-DSM is similar to CD, DSM and BiDSM and slightly better than "
        "PCD and NCE-based methods after convergence. The convergence speed of VaGES-DSM is "
        "faster than BiDSM.”",
        "holds when VaGES-DSM's final test log-likelihood is similar to CD's, DSM's and "
        "BiDSM's (N = 2 and N = 5), better than PCD's, NCE's and VNCE's, and its mean curve "
        f"at the first evaluation after {EARLY_FRACTION:.0%} of training is better than "
        f"BiDSM's (N = 2 and N = 5). {SIMILAR_RULE}; {BETTER_RULE}.",
        measure_dsm,
    ),
    Claim(
        "H",
        "VaGES with and without the control variate (checkerboard)",
        "appendix H; Fig. 7",
        "The control variate “only marginally improves the performance of VaGES-KSD and "
        "makes no difference to VaGES-DSM”.",
        "holds when VaGES-DSM with the control variate is similar to VaGES-DSM without it, "
        "and VaGES-KSD (L = 2) with it is not worse than without it, by the final test "
        f"log-likelihood. {SIMILAR_RULE}; {NOT_WORSE_RULE}.",
        measure_control_variate,
    ),
    Claim(
        "frey",
        "The Frey-face protocol (h = 400): VaGES-DSM against BiDSM",
        "appendix F.2.1 (setting); the full paper's GRBM comparison",
        "On Frey face (h = 400, 20k iterations, selection by validation log-likelihood), "
        "VaGES-DSM learns GRBMs as well as BiDSM.",
        f"holds when VaGES-DSM's test log-likelihood is similar to BiDSM's (N = 5); the "
        f"exact-score DSM is shown for reference. {SIMILAR_RULE}.",
        measure_frey,
    ),
    Claim(
        "F.3",
        "The learned Fisher divergence against the exact one",
        "appendix F.3; the full paper's Fisher-divergence figure",
        "The Fisher divergence learned with a critic and the VaES score tracks the exact "
        "Fisher divergence of GRBMs perturbed away from the data.",
        "holds when at every (D, level) the learned estimate is within two combined "
        f"standard errors or {FISHER_RELATIVE:.0%} of the exact value, whichever is larger.",
        measure_fisher,
    ),
    Claim(
        "F.4",
        "Bias of VaES and VaGES against the posterior divergence (theorems 1 and 2)",
        "appendix C, D (theorems), F.4 (setting); the full paper's bias figure",
        "The biases of VaES and VaGES are bounded by a constant times the square root of "
        "KL(q‖p) (Bernoulli h) or of the Fisher divergence (continuous h).",
        f"holds when every log-log slope of the bias against √divergence is at least "
        f"{MIN_SLOPE} (a slope of 1 or more is what a bound C·√divergence allows near 0).",
        measure_bias,
    ),
    Claim(
        "G.2.2-time",
        "Time per iteration of a deep EBLVM against a deep EBM (Fashion-MNIST stand-in)",
        "appendix G.2.2 (“Devices and training time”)",
        "“Training an EBLVM takes about 2.8 times as long as training an EBM (MDSM)”.",
        f"holds when the EBLVM's seconds per iteration over the EBM's lie in "
        f"[{TIME_RATIO_RANGE[0]}, {TIME_RATIO_RANGE[1]}] (about {PAPER_TIME_RATIO}×, within "
        "30 %), timed after warm-up iterations.",
        measure_time_ratio,
    ),
    Claim(
        "G.2.2-fashion",
        "Sample quality of the deep EBLVM against the deep EBM (Fashion-MNIST stand-in)",
        "appendix G.2.2; the full paper's Tab. 1 (a)",
        "The deep EBLVM trained by VaGES-MDSM gives better samples than the EBM trained by "
        "MDSM (CIFAR10 Inception score 7.53 against 6.78).",
        "holds when the EBLVM's run beats the EBM's on every sample metric recorded for "
        "both (`eblvm evaluate`: FID-like metrics lower, scores higher), by more than two "
        "combined standard deviations where the records give them.",
        measure_sample_quality,
    ),
    Claim(
        "G.2.2-cifar10",
        "Deep EBLVM on CIFAR10: FID 28.09, Inception score 7.53",
        "appendix F.2.2 (setting), G.2.2; the full paper's Tab. 1 (a)",
        "VaGES-MDSM trains a deep EBLVM on CIFAR10 to FID 28.09 and Inception score 7.53 "
        "(EBM 6.78).",
        "the FID and Inception score of `cifar10-vages-mdsm` against the paper's, and "
        "against `cifar10-ebm-mdsm`.",
        _needs_gpu("cifar10"),
    ),
    Claim(
        "G.2.2-celeba",
        "Deep EBLVM on CelebA",
        "appendix F.2.2 (setting), G.2.2",
        "VaGES-MDSM trains a deep EBLVM on CelebA 64×64 whose samples match BiSM's.",
        "the FID of `celeba-vages-mdsm` against `celeba-ebm-mdsm` and the paper's.",
        _needs_gpu("celeba"),
    ),
)
