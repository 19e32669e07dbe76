"""The δ schedule, the compiled bias against a hand computation, and the modulated attention rows."""
import math

import numpy as np
import pytest
import torch

from numina_core.config import preset
from numina_core.grid import FIRST_ADDED, REMOVED, Layout, TokenGrid
from numina_core.guidance import (build_guidance_plan, cross_attention_bias, masked_attention,
                                  modulated_attention_rows, modulation_delta, step_mask, write_assigned_bias)

REFERENCE_DELTAS = {0: 1.75, 22: 1.746, 23: 1.723, 24: 1.571, 25: 1.0, 26: 0.429, 27: 0.277, 28: 0.254, 30: 0.25}


@pytest.mark.parametrize("step,expected", REFERENCE_DELTAS.items())
def test_delta_equals_the_reference_values_at_50_steps(step, expected):
    config = preset("reference")
    assert config.modulation_delta(config.reference_time(step, 50)) == pytest.approx(expected, abs=1e-3)


def test_guidance_is_active_for_steps_0_to_44_of_50():
    config = preset("reference")
    active = [s for s in range(50) if modulation_delta(s, 50, config) is not None]
    assert active == list(range(45))


def test_progress_axis_follows_the_50_step_curve_at_other_step_counts():
    config = preset("reference")
    assert modulation_delta(10, 25, config) == pytest.approx(modulation_delta(20, 50, config))
    assert config.capture_step_for(50) == 20 and config.capture_step_for(20) == 8
    raw = preset("reference", schedule_axis="step")
    assert raw.reference_time(10, 25) == 10 and raw.capture_step_for(10) == 9


def small_case():
    grid = TokenGrid(2, 2, 3)
    cats = np.zeros(grid.shape, dtype=np.int32)
    cats[0] = [[1, 1, 2], [0, REMOVED, 0]]          # frame 0: one removal
    cats[1] = [[1, 1, 0], [2, FIRST_ADDED, 0]]      # frame 1: an addition with reference (smallest = 2)
    dogs = np.zeros(grid.shape, dtype=np.int32)
    dogs[1] = [[0, 0, FIRST_ADDED], [0, 0, 0]]      # frame 1: an addition with no instance → circle
    layout = Layout(grid, {"cats": cats, "dogs": dogs})
    columns = {"cats": [1, 2], "dogs": [4]}
    return grid, layout, columns


def test_bias_equals_a_hand_computation():
    grid, layout, columns = small_case()
    config = preset("reference")
    heads, d, text = 2, 4, 6
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(heads, grid.tokens, d, generator=gen)
    k = torch.randn(heads, text, d, generator=gen)
    delta = 1.7
    plan = build_guidance_plan(layout, columns, config)
    bias = cross_attention_bias(q, k, plan, delta)
    hw = grid.tokens_per_frame
    removed_row, added_row, reference_row, circle_row = 0 * hw + 4, 1 * hw + 4, 1 * hw + 3, 1 * hw + 2
    assert plan.rows.tolist() == sorted([removed_row, added_row, circle_row])
    assert plan.rows[plan.assigned_rows].tolist() == [added_row]  # the only row whose bias reads q
    expected = np.zeros((grid.tokens, text))
    for j in columns["cats"]:
        expected[removed_row, j] = -10 * delta
    scores = lambda p, j: [float(q[h, p] @ k[h, j]) / math.sqrt(d) for h in range(heads)]
    a_bar = np.mean([s for j in columns["cats"] for s in scores(reference_row, j)])
    for j in columns["cats"]:
        expected[added_row, j] = delta * a_bar - np.mean(scores(added_row, j))
    expected[circle_row, 4] = 0.8 * delta
    np.testing.assert_allclose(bias.numpy(), expected[plan.rows.numpy()], atol=1e-5)


def test_modulated_rows_equal_a_naive_biased_softmax():
    grid, layout, columns = small_case()
    plan = build_guidance_plan(layout, columns, preset("reference"))
    gen = torch.Generator().manual_seed(1)
    q = torch.randn(2, grid.tokens, 4, generator=gen)
    k = torch.randn(2, 6, 4, generator=gen)
    v = torch.randn(2, 6, 4, generator=gen)
    step = step_mask(plan, 1.2, 1.0, 6, torch.float32)
    write_assigned_bias(step, q, k, plan)
    rows = modulated_attention_rows(q, k, v, plan, step)
    logits = q[:, plan.rows] @ k.transpose(1, 2) / 2 + cross_attention_bias(q, k, plan, 1.2)
    expected = (torch.softmax(logits, -1) @ v).transpose(0, 1).reshape(len(plan.rows), -1)
    torch.testing.assert_close(rows, expected, atol=1e-5, rtol=1e-5)


def test_suppression_drives_the_noun_probability_to_zero():
    grid = TokenGrid(1, 2, 2)
    labels = np.full(grid.shape, REMOVED, dtype=np.int32)
    plan = build_guidance_plan(Layout(grid, {"cat": labels}), {"cat": [0]}, preset("reference"))
    q = torch.ones(1, 4, 2)
    k = torch.tensor([[[3.0, 3.0], [0.0, 0.0]]])
    bias = cross_attention_bias(q, k, plan, 1.75)
    probs = torch.softmax(q[:, plan.rows] @ k.transpose(1, 2) / math.sqrt(2) + bias, -1)
    assert probs[0, :, 0].max() < 1e-4


def test_nothing_to_correct_gives_an_empty_plan_and_strength_scales_the_bias():
    grid = TokenGrid(1, 2, 2)
    empty = build_guidance_plan(Layout(grid, {"cat": np.ones(grid.shape, np.int32)}), {"cat": [0]}, preset("reference"))
    assert empty.is_empty
    _, layout, columns = small_case()
    plan = build_guidance_plan(layout, columns, preset("reference"))
    q, k = torch.randn(2, 12, 4), torch.randn(2, 6, 4)
    full = cross_attention_bias(q, k, plan, 1.0)
    torch.testing.assert_close(cross_attention_bias(q, k, plan, 1.0, strength=0.5), full * 0.5)


def noun_share(q: torch.Tensor, k: torch.Tensor, rows, columns, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Head-mean attention share of `rows` on the key `columns` (softmax over every key), float64."""
    logits = q[:, rows].double() @ k.double().transpose(1, 2) / math.sqrt(q.shape[-1])
    if bias is not None:
        logits = logits + bias.double()
    return torch.softmax(logits, -1)[:, :, columns].sum(-1).mean(0)


@pytest.mark.parametrize("delta", [1.75, 1.0, 0.25])
def test_attention_share_addition_gives_added_pixels_delta_times_the_references_share(delta):
    """With addition_target 'attention_share', the added pixel's head-mean share on the noun's tokens is
    δ × the reference pixels' share, whatever the added row's own logit level; removals and circle additions
    keep the reference formulas."""
    grid, layout, columns = small_case()
    config = preset("reference", addition_target="attention_share")
    gen = torch.Generator().manual_seed(2)
    q = torch.randn(2, grid.tokens, 4, generator=gen)
    k = torch.randn(2, 6, 4, generator=gen)
    hw = grid.tokens_per_frame
    added_row, reference_row = 1 * hw + 4, 1 * hw + 3
    plan = build_guidance_plan(layout, columns, config)
    bias = cross_attention_bias(q, k, plan, delta)
    reference = noun_share(q, k, [reference_row], columns["cats"])
    row = plan.rows.tolist().index(added_row)
    guided = noun_share(q, k, [added_row], columns["cats"], bias[row][None])
    assert float(guided) == pytest.approx(min(delta * float(reference), 0.95), abs=1e-4)
    logit_plan = build_guidance_plan(layout, columns, preset("reference"))
    logit_bias = cross_attention_bias(q, k, logit_plan, delta)
    unassigned = [i for i, r in enumerate(plan.rows.tolist()) if r != added_row]
    torch.testing.assert_close(bias[unassigned], logit_bias[unassigned])
    assert bias[row, [0, 3, 4, 5]].abs().max() == 0  # only the noun's columns are biased


def test_attention_share_target_is_capped_below_one():
    grid, layout, columns = small_case()
    plan = build_guidance_plan(layout, columns, preset("reference", addition_target="attention_share"))
    q = torch.zeros(2, grid.tokens, 4)
    k = torch.zeros(2, 6, 4)
    k[:, 1:3] = 1.0
    q[:, 1 * grid.tokens_per_frame + 3] = 20.0  # the reference reads the cats' tokens almost exclusively
    bias = cross_attention_bias(q, k, plan, 1.75)
    row = plan.rows.tolist().index(1 * grid.tokens_per_frame + 4)
    assert float(noun_share(q, k, [1 * grid.tokens_per_frame + 4], [1, 2], bias[row][None])) == pytest.approx(0.95, abs=1e-4)


def dense_bias(plan, bias: torch.Tensor, tokens: int) -> torch.Tensor:
    """The plan's [R, L_text] bias spread over every video token (0 on rows the plan leaves alone)."""
    full = torch.zeros(tokens, bias.shape[1])
    full[plan.rows] = bias
    return full


def test_background_suppression_biases_the_nouns_empty_pixels_only_when_something_is_corrected():
    """With background_suppress_scale s, every pixel where a noun has no instance (label 0) gets −s·δ on that
    noun's tokens on top of the reference bias; instances, removals and additions keep theirs; a layout with
    nothing to correct still gives an empty plan (plain sampling)."""
    grid, layout, columns = small_case()
    gen = torch.Generator().manual_seed(4)
    q, k = torch.randn(2, grid.tokens, 4, generator=gen), torch.randn(2, 6, 4, generator=gen)
    delta = 1.5
    reference_plan = build_guidance_plan(layout, columns, preset("reference"))
    plan = build_guidance_plan(layout, columns, preset("reference", background_suppress_scale=2.0))
    expected = dense_bias(reference_plan, cross_attention_bias(q, k, reference_plan, delta), grid.tokens)
    for noun, labels in layout.labels.items():
        empty = torch.from_numpy(labels.ravel() == 0)
        for column in columns[noun]:
            expected[empty, column] -= 2.0 * delta
    actual = dense_bias(plan, cross_attention_bias(q, k, plan, delta), grid.tokens)
    torch.testing.assert_close(actual, expected)
    assert actual[0 * grid.tokens_per_frame + 0, columns["cats"]].tolist() == [0.0, 0.0]  # a kept cat
    one_cat = np.zeros(grid.shape, np.int32)
    one_cat[:, 0, 0] = 1
    nothing = Layout(grid, {"cats": one_cat})
    assert build_guidance_plan(nothing, {"cats": [1]}, preset("reference", background_suppress_scale=2.0)).is_empty


def test_background_suppression_always_guides_a_layout_with_nothing_to_correct():
    """With background_suppress_always, a layout whose counts already match is still guided: every pixel outside
    the noun's instances gets −s·δ on its tokens, the instances none; without a scale the option does nothing."""
    grid = TokenGrid(2, 3, 3)
    one_cat = np.zeros(grid.shape, np.int32)
    one_cat[:, 0, 0] = 1
    nothing = Layout(grid, {"cats": one_cat})
    config = preset("reference", background_suppress_scale=2.0, background_suppress_always=True)
    plan = build_guidance_plan(nothing, {"cats": [1]}, config)
    outside = np.nonzero(one_cat.ravel() == 0)[0]
    assert plan.rows.tolist() == outside.tolist()
    q, k = torch.randn(2, grid.tokens, 4), torch.randn(2, 3, 4)
    bias = cross_attention_bias(q, k, plan, 1.5)
    assert torch.equal(bias[:, 1], torch.full((len(outside),), -3.0))
    assert torch.equal(bias[:, [0, 2]], torch.zeros(len(outside), 2))
    assert build_guidance_plan(nothing, {"cats": [1]}, preset("reference", background_suppress_always=True)).is_empty


def test_background_suppression_of_over_counted_nouns_only():
    """background_suppress_nouns 'over_counted': a noun with a removed instance gets its background suppressed;
    a noun that only gains an addition keeps its background free."""
    grid = TokenGrid(1, 3, 3)
    cats = np.zeros(grid.shape, np.int32)
    cats[0, 0, 0], cats[0, 2, 2] = 1, REMOVED
    dogs = np.zeros(grid.shape, np.int32)
    dogs[0, 1, 1], dogs[0, 0, 2] = 1, FIRST_ADDED
    layout = Layout(grid, {"cats": cats, "dogs": dogs})
    columns = {"cats": [1], "dogs": [3]}
    config = preset("reference", background_suppress_scale=2.0, background_suppress_nouns="over_counted")
    plan = build_guidance_plan(layout, columns, config)
    q, k = torch.randn(1, grid.tokens, 4), torch.randn(1, 5, 4)
    bias = dense_bias(plan, cross_attention_bias(q, k, plan, 1.0), grid.tokens)
    cat_background = np.nonzero(cats.ravel() == 0)[0]
    dog_background = np.nonzero(dogs.ravel() == 0)[0]
    assert torch.equal(bias[cat_background, 1], torch.full((len(cat_background),), -2.0))
    assert torch.equal(bias[dog_background, 3], torch.zeros(len(dog_background)))
    assert bias[8, 1].item() == -10.0  # the removed cat keeps its removal bias


def test_background_suppression_of_every_noun_but_the_under_counted():
    """background_suppress_nouns 'not_under_counted': a noun whose layout already counts right (no removal, no
    addition) is held to it while another noun is corrected; a noun with an addition keeps its background free."""
    grid = TokenGrid(1, 3, 3)
    cats = np.zeros(grid.shape, np.int32)
    cats[0, 0, 0] = 1                                       # right already
    dogs = np.zeros(grid.shape, np.int32)
    dogs[0, 1, 1], dogs[0, 0, 2] = 1, FIRST_ADDED           # under-counted
    birds = np.zeros(grid.shape, np.int32)
    birds[0, 2, 0], birds[0, 2, 2] = 1, REMOVED             # over-counted
    layout = Layout(grid, {"cats": cats, "dogs": dogs, "birds": birds})
    columns = {"cats": [1], "dogs": [3], "birds": [4]}
    config = preset("reference", background_suppress_scale=2.0, background_suppress_nouns="not_under_counted")
    plan = build_guidance_plan(layout, columns, config)
    q, k = torch.randn(1, grid.tokens, 4), torch.randn(1, 5, 4)
    bias = dense_bias(plan, cross_attention_bias(q, k, plan, 1.0), grid.tokens)
    for labels, column in ((cats, 1), (birds, 4)):
        background = np.nonzero(labels.ravel() == 0)[0]
        assert torch.equal(bias[background, column], torch.full((len(background),), -2.0))
    assert torch.equal(bias[np.nonzero(dogs.ravel() == 0)[0], 3], torch.zeros(int((dogs == 0).sum())))
    assert bias[0, 1].item() == 0.0 and bias[8, 4].item() == -10.0


def test_dense_masked_attention_equals_the_modulated_rows_and_plain_attention_elsewhere():
    """The dense path (one attention over every row, the plan's rows biased) gives the sparse path's rows on the
    plan and unbiased attention on every other row."""
    grid, layout, columns = small_case()
    gen = torch.Generator().manual_seed(7)
    q, k, v = (torch.randn(2, n, 4, generator=gen) for n in (grid.tokens, 6, 6))
    plan = build_guidance_plan(layout, columns, preset("reference", background_suppress_scale=2.0,
                                                       background_suppress_nouns="over_counted"))
    dense_step, sparse_step = step_mask(plan, 1.2, 1.0, 6, torch.float32, grid.tokens), step_mask(plan, 1.2, 1.0, 6,
                                                                                                  torch.float32)
    for step in (dense_step, sparse_step):
        write_assigned_bias(step, q, k, plan)
    dense = masked_attention(q, k, v, dense_step.mask)
    torch.testing.assert_close(dense[plan.rows], modulated_attention_rows(q, k, v, plan, sparse_step))
    others = torch.ones(grid.tokens, dtype=torch.bool)
    others[plan.rows] = False
    plain = torch.nn.functional.scaled_dot_product_attention(q[None], k[None], v[None])[0].transpose(0, 1)
    torch.testing.assert_close(dense[others], plain.reshape(grid.tokens, -1)[others])
    assert others.any() and len(plan.rows) >= grid.tokens // 2


@pytest.mark.parametrize("addition_target", ["logit", "attention_share"])
def test_a_step_mask_reused_by_later_calls_equals_one_built_for_each_call(addition_target):
    """A guided step builds its mask once and each block call rewrites only the assigned cells: after calls with
    other queries, the mask must equal one built fresh for the last call's queries (no cell keeps an earlier
    call's value), on the dense (per video token) and the sparse (per plan row) layout, at half strength."""
    grid, layout, columns = small_case()
    plan = build_guidance_plan(layout, columns, preset("reference", background_suppress_scale=2.0,
                                                       background_suppress_nouns="over_counted",
                                                       addition_target=addition_target))
    assert len(plan.assigned_rows) > 0
    gen = torch.Generator().manual_seed(11)
    calls = [(torch.randn(2, grid.tokens, 4, generator=gen), torch.randn(2, 6, 4, generator=gen)) for _ in range(3)]
    for video_tokens in (grid.tokens, None):
        reused = step_mask(plan, 1.4, 0.5, 6, torch.float32, video_tokens)
        for q, k in calls:
            write_assigned_bias(reused, q, k, plan)
        q, k = calls[-1]
        fresh = step_mask(plan, 1.4, 0.5, 6, torch.float32, video_tokens)
        write_assigned_bias(fresh, q, k, plan)
        assert torch.equal(reused.mask, fresh.mask)
        torch.testing.assert_close(reused.on_plan_rows(), cross_attention_bias(q, k, plan, 1.4, strength=0.5))
        if video_tokens is not None:
            others = torch.ones(grid.tokens, dtype=torch.bool)
            others[plan.rows] = False
            assert others.any() and not reused.mask[others].any()


def test_masked_attention_is_the_same_with_and_without_a_backend_priority(monkeypatch):
    """The masked call asks for cuDNN first where PyTorch can set a backend priority; where it cannot (an
    older PyTorch) it runs PyTorch's default order, with the same result."""
    from numina_core import guidance

    gen = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(2, n, 8, generator=gen) for n in (10, 6, 6))
    mask = torch.randn(10, 6, generator=gen) * 3
    expected = (torch.softmax(q @ k.transpose(1, 2) / math.sqrt(8) + mask, -1) @ v).transpose(0, 1).reshape(10, -1)
    prioritised = guidance.masked_attention(q, k, v, mask)
    monkeypatch.setattr(guidance, "CAN_SET_SDPA_PRIORITY", False)
    torch.testing.assert_close(guidance.masked_attention(q, k, v, mask), prioritised)
    torch.testing.assert_close(prioritised, expected, atol=1e-5, rtol=1e-5)


def test_half_precision_queries_give_the_float32_bias_within_their_rounding():
    """The assigned cells are computed in the attention's dtype (matmuls accumulate in float32): from bfloat16
    queries and keys the mask must equal the float32 bias of the same values to bfloat16's resolution."""
    grid, layout, columns = small_case()
    plan = build_guidance_plan(layout, columns, preset("reference", background_suppress_scale=2.0,
                                                       background_suppress_nouns="over_counted"))
    gen = torch.Generator().manual_seed(3)
    q = (torch.randn(8, grid.tokens, 16, generator=gen) * 2).bfloat16()
    k = (torch.randn(8, 6, 16, generator=gen) * 2).bfloat16()
    exact = cross_attention_bias(q.float(), k.float(), plan, 1.6, strength=0.5)
    half = step_mask(plan, 1.6, 0.5, 6, torch.bfloat16)
    write_assigned_bias(half, q, k, plan)
    assigned = plan.assigned_rows
    assert exact[assigned][:, plan.columns].abs().max() > 0.5  # the queries' part is not negligible
    torch.testing.assert_close(half.mask.float(), exact, atol=0.02, rtol=2 ** -7)
