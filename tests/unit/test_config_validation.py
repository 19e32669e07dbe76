"""Settings are checked where they enter: type, range, NaN, unknown names; every numeric field has bounds."""
from __future__ import annotations

import dataclasses
import math

import pytest

from numina_core.config import (DEFAULT_PRESET, FIELD_RANGES, LITERAL_FIELDS, PRESETS, ConfigError, NuminaConfig,
                                preset)


def test_every_numeric_field_has_bounds_and_every_bound_a_field():
    fields = {spec.name for spec in dataclasses.fields(NuminaConfig)}
    numeric = {spec.name for spec in dataclasses.fields(NuminaConfig)
               if spec.name not in LITERAL_FIELDS and str(spec.type) not in ("bool",)}
    assert numeric == set(FIELD_RANGES)
    assert set(FIELD_RANGES) <= fields


def test_presets_are_valid_and_the_default_is_improved():
    assert DEFAULT_PRESET == "improved" and set(PRESETS) >= {"reference", "paper", "improved"}
    assert preset("reference") == NuminaConfig()


@pytest.mark.parametrize("changes,fragment", [
    ({"placement_grid_step": 0}, "placement_grid_step must be ≥ 1, not 0"),
    ({"reference_total_steps": 0}, "reference_total_steps must be ≥ 1"),
    ({"sa_block_grid": 0}, "sa_block_grid must be ≥ 1"),
    ({"circle_radius": "five"}, "circle_radius must be int, not 'five'"),
    ({"pca_power_iterations": -1}, "pca_power_iterations must be between 0 and 64, not -1"),
    ({"suppress_scale": math.nan}, "suppress_scale must be a finite number, not nan"),
    ({"dbscan_eps": 0}, "dbscan_eps must be ≥ 1e-06, not 0"),
    ({"meanshift_bandwidth": -1}, "meanshift_bandwidth must be ≥ 1e-06, not -1"),
    ({"cross_attn_peak_ratio": "0.1"}, "cross_attn_peak_ratio must be float or int, not '0.1'"),
    ({"guidance_strength": True}, "guidance_strength must be float or int, not True"),
    ({"split_clusters_into_components": 1}, "split_clusters_into_components must be bool, not 1"),
    ({"cross_attention_head_mode": "max"}, "cross_attention_head_mode must be one of ['mean', 'peak'], not 'max'"),
])
def test_a_bad_value_names_the_field_and_what_it_must_be(changes, fragment):
    with pytest.raises(ConfigError) as raised:
        preset("improved", **changes)
    assert fragment in str(raised.value)


def test_an_unknown_field_lists_the_valid_ones():
    with pytest.raises(ConfigError) as raised:
        preset("reference", guidance_strenght=0)
    message = str(raised.value)
    assert "unknown field(s) ['guidance_strenght']" in message and "guidance_strength" in message


def test_strength_zero_and_auto_capture_block_are_live_fields():
    config = preset("reference", guidance_strength=0.0)
    assert config.guidance_strength == 0.0
    assert preset("reference").capture_block_for(30) == 15 and preset("reference").capture_block_for(40) == 20
    assert preset("reference", reference_layer=3).capture_block_for(40) == 3
    assert [preset("reference").capture_block_for(n) for n in (5, 6, 7, 42)] == [2, 3, 3, 21]  # = n // 2
    two_thirds = preset("reference", reference_layer_depth=2 / 3)
    assert [two_thirds.capture_block_for(n) for n in (6, 30, 40)] == [4, 20, 26]
