"""The comparison figure reads at a glance: every series its own (colour, line style),
the legends outside the axes, panels by family of methods."""

from __future__ import annotations

import pytest
from matplotlib.colors import to_rgba

from eblvm.cli import compare_panels
from eblvm.experiments.compare import (
    check_panels,
    comparison_figure,
    line_styles,
)
from eblvm.grbm.presets import GRBM_PRESETS
from eblvm.settings import SettingsError

CHECKERBOARD = [
    name
    for name in GRBM_PRESETS
    if name.startswith("checkerboard-") and name != "checkerboard-quick"
]


def _rows(names: list[str]) -> list[dict[str, object]]:
    """Synthetic rows: curves that overlap, a ceiling."""
    iterations = [0, 500, 1000, 1500]
    return [
        {
            "method": name,
            "data_log_likelihood": -3.2,
            "curve": {
                "iteration": iterations,
                "seconds": [0.0, 1.0, 2.0, 3.0],
                "mean": [-4.0 + 0.1 * k + 0.01 * i for k in range(4)],
                "std": [0.05] * 4,
            },
        }
        for i, name in enumerate(names)
    ]


def _series(axis) -> list[tuple[str, tuple[float, ...], str]]:
    """(label, colour, line style) of the method curves (not the ceiling)."""
    return [
        (line.get_label(), to_rgba(line.get_color()), line.get_linestyle())
        for line in axis.get_lines()
        if not line.get_label().startswith("the data's")
    ]


def test_every_checkerboard_preset_has_its_own_colour_and_line_style():
    assert len(CHECKERBOARD) >= 20
    figure = comparison_figure(
        _rows(CHECKERBOARD),
        metric="test_log_likelihood",
        x_axis="iteration",
        seeds=2,
        panels=check_panels(None, dict.fromkeys(CHECKERBOARD)),
    )
    (axis,) = figure.axes
    series = _series(axis)
    assert [label for label, _, _ in series] == CHECKERBOARD
    pairs = [(colour, style) for _, colour, style in series]
    assert len(set(pairs)) == len(pairs)


@pytest.mark.parametrize("n_panels", [1, 2])
def test_the_legends_lie_outside_their_axes(n_panels):
    names = CHECKERBOARD[:12]
    panels = {"": names} if n_panels == 1 else {"DSM family": names[:6], "KSD family": names[6:]}
    figure = comparison_figure(
        _rows(names), metric="test_log_likelihood", x_axis="iteration", seeds=2, panels=panels
    )
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    assert len(figure.axes) == n_panels
    for axis in figure.axes:
        legend = axis.get_legend().get_window_extent(renderer)
        box = axis.get_window_extent(renderer)
        assert legend.x0 >= box.x1  # wholly to the right of the axes
        assert legend.width > 0 and legend.height > 0


def test_panels_keep_a_method_in_one_style_and_draw_only_their_own():
    names = CHECKERBOARD[:8]
    panels = {"with CV": names[:3], "without CV": names[3:]}
    figure = comparison_figure(
        _rows(names), metric="test_log_likelihood", x_axis="iteration", seeds=2, panels=panels
    )
    styles = line_styles(names)
    for axis, (title, members) in zip(figure.axes, panels.items(), strict=True):
        assert axis.get_title().startswith(title)
        series = _series(axis)
        assert [label for label, _, _ in series] == members
        for label, colour, style in series:
            assert (colour, style) == (to_rgba(styles[label][0]), styles[label][1])


def test_bad_panels_are_refused():
    configs = dict.fromkeys(["a", "b"])
    with pytest.raises(ValueError, match=r"panels\['x'\] names \['c'\]"):
        check_panels({"x": ["a", "c"]}, configs)
    with pytest.raises(ValueError, match="non-empty list of names"):
        check_panels({"x": "a"}, configs)
    with pytest.raises(ValueError, match="panels must map"):
        check_panels({}, configs)
    with pytest.raises(ValueError, match="at most 40 distinct series"):
        line_styles([str(i) for i in range(41)])


def test_the_panel_flag_names_presets_with_their_swept_runs():
    presets = ["checkerboard-vages-dsm", "checkerboard-vages-cv-dsm"]
    assert compare_panels([], presets, None) is None
    assert compare_panels(["with CV=checkerboard-vages-cv-dsm"], presets, None) == {
        "with CV": ["checkerboard-vages-cv-dsm"]
    }
    assert compare_panels(["L=checkerboard-vages-dsm"], presets, "n_samples=2,3") == {
        "L": ["checkerboard-vages-dsm-n_samples=2", "checkerboard-vages-dsm-n_samples=3"]
    }
    with pytest.raises(SettingsError, match="--panel expects TITLE=PRESET"):
        compare_panels(["no title"], presets, None)
    with pytest.raises(SettingsError, match=r"names \['checkerboard-dsm'\], which are not"):
        compare_panels(["x=checkerboard-dsm"], presets, None)
