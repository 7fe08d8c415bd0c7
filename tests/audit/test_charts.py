# Copyright 2026 The dmil_ros Authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.


"""The report's SVG charts: time binning against a per-bin loop; well-formed, finite SVG for
degenerate input (no frames, one frame, NaN / inf terms, missing sources)."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dmil_ros.actions import ACTIONS, COMPONENTS
from dmil_ros.audit.charts import MAX_POINTS, _bins, bars_svg, boxplot_svg, timeline_svg

_NUMBER_ATTRS = re.compile(r'\b(?:x|y|x1|x2|y1|y2|width|height|points)="([^"]*)"')


def _check_svg(svg: str) -> ET.Element:
    """Parses as XML, has drawn marks, and every coordinate is a finite number."""
    root = ET.fromstring(svg)
    assert root.tag.endswith('svg')
    assert 'class="mark"' in svg
    for value in _NUMBER_ATTRS.findall(svg):
        for number in re.split(r'[ ,]+', value.strip()):
            assert np.isfinite(float(number)), f'coordinate {number!r} in {value!r}'
    return root


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3000), k=st.integers(1, 5), n_bins=st.integers(1, 700))
def test_bins_are_the_means_of_equal_index_runs(n: int, k: int, n_bins: int) -> None:
    values = np.random.default_rng(n * 31 + k).normal(size=(n, k))
    got = _bins(values, n_bins)
    if n <= n_bins:
        assert got is values
        return
    edges = [int(e) for e in np.linspace(0, n, n_bins + 1)]
    want = np.array([values[a:b].mean(axis=0) for a, b in itertools.pairwise(edges)])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_a_long_timeline_is_drawn_with_at_most_max_points_vertices() -> None:
    n = 10 * MAX_POINTS
    rng = np.random.default_rng(0)
    svg = timeline_svg(
        'long',
        seconds=np.arange(n) * 0.05,
        terms=rng.uniform(0, 1, (n, 4)),
        spikes=[(1.0, 2.0, 0.9)],
        alerts=np.array([1.5]),
    )
    root = _check_svg(svg)
    polygons = [e for e in root.iter() if e.tag.endswith('polygon')]
    assert len(polygons) == len(COMPONENTS)
    for poly in polygons:  # upper edge + lower edge
        assert len(poly.attrib['points'].split()) == 2 * MAX_POINTS


def test_degenerate_timelines_stay_finite() -> None:
    nan_terms = np.array([[np.nan, np.inf, -np.inf, 0.5]])
    for seconds, terms in [
        (np.zeros(0), np.zeros((0, 4))),  # a bag without frames
        (np.array([3.0]), nan_terms),  # one frame, non-finite terms
        (np.array([1.0, 1.0]), np.full((2, 4), np.nan)),  # one stamp twice, all NaN
    ]:
        _check_svg(timeline_svg('t', seconds=seconds, terms=terms, spikes=[], alerts=seconds))


def test_box_plots_skip_non_finite_values_and_empty_groups() -> None:
    rng = np.random.default_rng(1)
    groups = {
        ACTIONS[0]: rng.uniform(0, 1, (40, 4)),
        ACTIONS[1]: np.full((3, 4), np.nan),  # nothing finite: no box, still labelled
        ACTIONS[2]: np.zeros((0, 4)),  # no frames of this action
    }
    svg = boxplot_svg('gates', groups, COMPONENTS)
    _check_svg(svg)
    assert svg.count('<g class="mark">') == len(COMPONENTS)  # boxes of the first group only
    assert f'{ACTIONS[1]} (n=3)' in svg
    assert f'{ACTIONS[2]} (n=0)' in svg


def test_bars_show_each_present_source_and_stay_finite() -> None:
    data = dict(zip(COMPONENTS, (1.2, 0.0, 0.01, 0.75), strict=True))
    model = dict(zip(COMPONENTS, (0.9, -0.02, 0.0, 0.3), strict=True))  # a small negative atom
    svg = bars_svg('pid', {'data': data, 'model': model, 'ground truth': None})
    _check_svg(svg)
    assert svg.count('class="mark"') == 2 * len(COMPONENTS)  # no bars for the missing source
    assert 'ground truth' not in svg
    assert 'model R: 0.900 bits' in svg
