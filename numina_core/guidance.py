"""Guidance (method.md §6): the δ schedule and the additive cross-attention bias of phase 2.

For each noun (in order) and frame, on the noun's token columns K:
* removed pixels: B += −suppress_scale·δ;
* *(deviation; on in the improved presets)* pixels where the noun has no instance: B += −background_suppress_scale·δ
  (only when the layout corrects something, unless background_suppress_always; with background_suppress_nouns
  'over_counted' only for nouns with a removed instance, with 'not_under_counted' for nouns with no addition);
* added pixels with no detected instance in the frame: B += circle_bias·δ;
* added pixels with a reference (the frame's smallest detected instance R): B = δ·ā − mean_h s_h(p, j)
  (assigned, not added), with ā the mean over heads, p ∈ R and j ∈ K of s_h(p, j) = q_h(p)·k_h(j)/√d;
  or, with addition_target 'attention_share' *(deviation)*, B = b(p) on every j ∈ K, the one value for which
  mean_h Σ_{j∈K} softmax_h(p)_j = min(δ·r̄, 0.95), r̄ that mean share over the reference pixels p ∈ R.
The bias is shared by all heads, applied on the positive pass only, in every block.

The plan is compiled once into dense per-row arrays, and each guided step's mask once from them (StepMask); a
block call then only rewrites the assigned cells, the one part that reads its queries (a few gathers and small
matmuls), and runs one masked attention, whatever the number of nouns and frames. Later entries win where two
nouns share a token: a later assignment replaces earlier values, later additions add.
"""
from __future__ import annotations

import contextlib
import inspect
import math
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from .config import BackgroundSuppressNouns, NuminaConfig
from .grid import FIRST_ADDED, REMOVED, Layout, TokenGrid


@dataclass
class GuidancePlan:
    """Compiled bias of one refined layout.

    rows: int64 [R], flat video-token indices whose cross-attention is modulated (sorted).
    columns: int64 [C], text-token columns any noun uses (sorted).
    additive: float32 [R, C], bias per unit δ from removals and circle additions (after the last assignment).
    assigned_rows: int64 [A], positions in `rows` of the rows with an assignment (the only rows whose bias
      depends on the queries, so the only ones the bias reads q for); found at build time, since a nonzero on
      the device would sync in every block call. assigned_tokens = rows[assigned_rows], their video tokens.
    assigned_entry: int64 [A, C], the reference entry whose assignment sets (assigned row, column), −1 for none.
    reference_rows: int64 [E, P] padded indices of each entry's reference pixels, reference_weights [E, P]
      (1/|R| on real pixels, 0 on padding); reference_columns / reference_column_weights likewise for K.
    """

    grid: TokenGrid
    rows: torch.Tensor
    columns: torch.Tensor
    additive: torch.Tensor
    assigned_rows: torch.Tensor
    assigned_tokens: torch.Tensor
    assigned_entry: torch.Tensor
    reference_rows: torch.Tensor
    reference_weights: torch.Tensor
    reference_columns: torch.Tensor
    reference_column_weights: torch.Tensor
    addition_target: str = "logit"
    """config.addition_target: what an assigned (row, column) is steered to."""

    @property
    def is_empty(self) -> bool:
        return self.rows.numel() == 0


def modulation_delta(step: int, steps: int, config: NuminaConfig) -> float | None:
    """δ at sampling step `step` of `steps`, or None when guidance is off at that step (δ ≤ min_delta,
    which in float64 is steps 45–49 of 50)."""
    delta = config.modulation_delta(config.reference_time(step, steps))
    if delta <= config.modulation_min_delta:
        return None
    return delta


def _padded(groups: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max([len(g) for g in groups] + [1])
    index = np.zeros((len(groups), width), dtype=np.int64)
    weight = np.zeros((len(groups), width), dtype=np.float32)
    for e, group in enumerate(groups):
        index[e, : len(group)] = group
        weight[e, : len(group)] = 1.0 / len(group)
    return torch.from_numpy(index), torch.from_numpy(weight)


def suppresses_background_of(labels: np.ndarray, nouns: BackgroundSuppressNouns) -> bool:
    """Whether background_suppress_nouns `nouns` suppresses the background of a noun whose refined labels are
    `labels`: 'all', 'over_counted' (it has a removed instance), 'not_under_counted' (it has no addition)."""
    if nouns == "over_counted":
        return bool((labels == REMOVED).any())
    if nouns == "not_under_counted":
        return not bool((labels >= FIRST_ADDED).any())
    return True


def build_guidance_plan(layout: Layout, token_columns: dict[str, list[int]], config: NuminaConfig) -> GuidancePlan:
    """Compile the refined layout's removals and additions into a GuidancePlan."""
    grid = layout.grid
    hw = grid.tokens_per_frame
    missing = [noun for noun in layout.nouns if noun not in token_columns]
    if missing:
        raise ValueError(f"no token columns for {missing}")
    columns = sorted({c for noun in layout.nouns for c in token_columns[noun]})
    column_index = {c: i for i, c in enumerate(columns)}
    # Entries in reference order: (kind, flat rows, column positions, reference rows or None).
    entries: list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]] = []
    # Background suppression accompanies a correction, unless asked always: a layout with nothing to correct
    # otherwise stays plain sampling.
    suppress_background = config.background_suppress_scale > 0 and (config.background_suppress_always or any(
        ((labels == REMOVED) | (labels >= FIRST_ADDED)).any() for labels in layout.labels.values()))
    for noun in layout.nouns:
        cols = np.array([column_index[c] for c in token_columns[noun]], dtype=np.int64)
        suppress_noun_background = suppress_background and suppresses_background_of(
            layout.labels[noun], config.background_suppress_nouns)
        for f in range(grid.frames):
            frame = layout.labels[noun][f].ravel()
            offset = f * hw
            removed = np.nonzero(frame == REMOVED)[0]
            added = np.nonzero(frame >= FIRST_ADDED)[0]
            if len(removed):
                entries.append(("suppress", removed + offset, cols, None))
            if suppress_noun_background:
                background = np.nonzero(frame == 0)[0]
                if len(background):
                    entries.append(("background", background + offset, cols, None))
            if len(added):
                detected = frame[(frame > 0) & (frame < FIRST_ADDED)]
                if len(detected) == 0:
                    entries.append(("circle", added + offset, cols, None))
                else:
                    values, sizes = np.unique(detected, return_counts=True)
                    reference = np.nonzero(frame == values[np.argmin(sizes)])[0]
                    entries.append(("reference", added + offset, cols, reference + offset))
    rows = np.unique(np.concatenate([e[1] for e in entries])) if entries else np.zeros(0, dtype=np.int64)
    row_index = np.full(grid.tokens, -1, dtype=np.int64)
    row_index[rows] = np.arange(len(rows))
    additive = np.zeros((len(rows), len(columns)), dtype=np.float32)
    assign_entry = np.full((len(rows), len(columns)), -1, dtype=np.int64)
    reference_groups, reference_column_groups = [], []
    for kind, flat_rows, cols, reference in entries:
        block = np.ix_(row_index[flat_rows], cols)
        if kind == "suppress":
            additive[block] -= config.suppress_scale
        elif kind == "background":
            additive[block] -= config.background_suppress_scale
        elif kind == "circle":
            additive[block] += config.circle_bias
        else:
            additive[block] = 0.0
            assign_entry[block] = len(reference_groups)
            reference_groups.append(reference)
            reference_column_groups.append(np.array(columns, dtype=np.int64)[cols])
    reference_rows, reference_weights = _padded(reference_groups)
    reference_columns, reference_column_weights = _padded(reference_column_groups)
    assigned_rows = np.nonzero((assign_entry >= 0).any(1))[0]
    return GuidancePlan(grid, torch.from_numpy(rows), torch.tensor(columns, dtype=torch.int64),
                        torch.from_numpy(additive), torch.from_numpy(assigned_rows),
                        torch.from_numpy(rows[assigned_rows]), torch.from_numpy(assign_entry[assigned_rows]),
                        reference_rows, reference_weights, reference_columns, reference_column_weights,
                        config.addition_target)


def plan_to(plan: GuidancePlan, device: torch.device) -> GuidancePlan:
    """The plan's tensors on `device` (done once per sampling run, not per block)."""
    moved = {field.name: getattr(plan, field.name).to(device) for field in fields(plan)
             if isinstance(getattr(plan, field.name), torch.Tensor)}
    return replace(plan, **moved)


@dataclass
class StepMask:
    """The additive cross-attention mask of one guided step (one δ), shared by every block call of the step.

    mask: [M, L_text] in the attention's dtype: one row per video token when built with `video_tokens` (the
      dense path; rows outside the plan stay 0), else one per plan row (the sparse path).
    Only the assigned cells depend on a block's queries: write_assigned_bias rewrites them, in place, in each
    call instead of the call rebuilding the whole mask.
    """

    mask: torch.Tensor
    delta: float
    plan_rows: torch.Tensor
    """int64 [R]: the mask's row of each plan row."""
    assigned_mask_rows: torch.Tensor
    """int64 [A]: the mask's rows with an assignment."""
    assigned_base: torch.Tensor
    """float32 [A, C]: their value before the queries' part (δ·additive·strength)."""
    assigned_gain: torch.Tensor
    """float32 [A, C]: the queries' part's weight in each cell: strength where the cell has a reference entry,
    else 0."""
    assigned_entry: torch.Tensor
    """int64 [A, C]: each cell's reference entry (0 where it has none: its gain is 0)."""

    def on_plan_rows(self) -> torch.Tensor:
        """The bias [R, L_text] on the plan's rows, in the mask's dtype."""
        return self.mask[self.plan_rows]


def step_mask(plan: GuidancePlan, delta: float, strength: float, text_tokens: int, dtype: torch.dtype,
              video_tokens: int | None = None) -> StepMask:
    """The mask of a step at `delta` with its assigned cells not yet written (write_assigned_bias does that):
    one row per video token when `video_tokens` is given, else one per plan row."""
    device = plan.rows.device
    bias_columns = plan.additive * delta                                   # [R, C]
    plan_rows = plan.rows if video_tokens is not None else torch.arange(len(plan.rows), device=device)
    mask = torch.zeros(len(plan_rows) if video_tokens is None else video_tokens, text_tokens, dtype=dtype,
                       device=device)
    mask[plan_rows[:, None], plan.columns[None]] = (bias_columns * strength).to(dtype)
    has_entry = plan.assigned_entry >= 0
    return StepMask(mask, delta, plan_rows, plan_rows[plan.assigned_rows],
                    bias_columns[plan.assigned_rows] * strength, has_entry.float() * strength,
                    plan.assigned_entry.clamp_min(0))


def write_assigned_bias(step: StepMask, q: torch.Tensor, k: torch.Tensor, plan: GuidancePlan) -> None:
    """Write the assigned cells of `step`'s mask for one positive-pass call: q [N_h, L, d] video queries and
    k [N_h, L_text, d] text keys of that batch row (heads split)."""
    # A plan has assigned cells exactly when it has reference entries (each entry assigns its block), so this
    # needs no look at assigned_entry's values: no device sync in every block call. Only the assigned rows read
    # q: with background suppression the plan covers nearly every row, and gathering all of them in float32 in
    # every block call made the 1.3B guided step 1.035× plain instead of 1.017× (docs/measurements.md).
    if not plan.reference_rows.shape[0]:
        return
    if plan.addition_target == "attention_share":
        values = torch.addcmul(step.assigned_base, step.assigned_gain, share_bias(q, k, plan, step.delta)[:, None])
    else:
        # ā per entry: the mean of s_h(p, j) over h, p ∈ R, j ∈ K factorises into mean q · mean k, and a mean
        # over heads of per-head dot products is one dot product over the heads side by side. The gathers and
        # matmuls stay in q's dtype (they accumulate in float32) instead of copying the gathered rows to float32.
        heads, _, head_dim = q.shape
        mean_scale = 1.0 / (math.sqrt(head_dim) * heads)
        weights = plan.reference_weights.to(q.dtype)[:, None]                                   # [E, 1, P]
        column_weights = plan.reference_column_weights.to(k.dtype)[:, None]                     # [E, 1, J]
        q_mean = torch.bmm(weights, token_rows(q, plan.reference_rows)).float()                 # [E, 1, N_h·d]
        k_mean = torch.bmm(column_weights, token_rows(k, plan.reference_columns)).float()
        reference_sum = (q_mean * k_mean).sum((1, 2))                                          # [E]
        scores = (token_rows(q, plan.assigned_tokens) @ token_rows(k, plan.columns).T).float()  # [A, C] Σ_h
        values = torch.addcmul(step.assigned_base, step.assigned_gain, reference_sum[step.assigned_entry],
                               value=step.delta * mean_scale)
        values.addcmul_(step.assigned_gain, scores, value=-mean_scale)
    step.mask[step.assigned_mask_rows[:, None], plan.columns[None]] = values.to(step.mask.dtype)


def token_rows(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Tokens `index` (any shape) of a heads-split t [N_h, L, d] as [*index.shape, N_h·d], the heads side by side:
    one gather in t's dtype, reading contiguous rows when t is a split view of [L, N_h·d] (as the hooks pass)."""
    return t.transpose(0, 1)[index].flatten(-2)


def cross_attention_bias(q: torch.Tensor, k: torch.Tensor, plan: GuidancePlan, delta: float,
                         strength: float = 1.0) -> torch.Tensor:
    """The bias [R, L_text] (float32) on the plan's rows for one positive-pass cross-attention call.

    q: [N_h, L, d] video queries and k: [N_h, L_text, d] text keys of that batch row (heads split)."""
    step = step_mask(plan, delta, strength, k.shape[1], torch.float32)
    write_assigned_bias(step, q, k, plan)
    return step.mask


MAX_ADDED_SHARE = 0.95
"""Ceiling of the attention share an added pixel is steered to: a share of 1 needs an infinite bias."""


def share_bias(q: torch.Tensor, k: torch.Tensor, plan: GuidancePlan, delta: float) -> torch.Tensor:
    """Per assigned plan row [A] (plan.assigned_rows; float32): the bias b that, added to the logits of the row's
    assigned noun columns K, makes its head-mean attention share on K equal to min(δ·r̄, MAX_ADDED_SHARE),
    r̄ the head-mean share of the entry's reference pixels on K. Softmaxes run over all of k's keys.

    The share mean_h σ(b + log A_h − log O_h), with A_h and O_h the row's exp-sums on and off K, increases
    with b, so b is found by bisection on [−60, 60] (40 halvings: far below a bf16 logit's resolution)."""
    heads, _, head_dim = q.shape
    scale = 1.0 / math.sqrt(head_dim)
    keys = k.shape[1]
    entries = plan.reference_rows.shape[0]
    on_entry = torch.zeros(entries, keys, device=q.device).scatter_add_(   # K of each entry, as key columns
        1, plan.reference_columns, (plan.reference_column_weights > 0).float()) > 0
    reference_logits = torch.einsum("hepd,hkd->hepk", q[:, plan.reference_rows].float(), k.float()) * scale
    reference_share = (torch.softmax(reference_logits, -1) * on_entry[None, :, None]).sum(-1)   # [N_h, E, P]
    reference_share = (reference_share * plan.reference_weights[None]).sum(-1).mean(0)        # [E]
    entry_of_row = torch.where(plan.assigned_entry >= 0, plan.assigned_entry, entries).min(1).values  # [A]
    target = (delta * reference_share[entry_of_row]).clamp(1e-6, MAX_ADDED_SHARE)
    row_on = on_entry[entry_of_row]                                                           # [A, keys]
    logits = torch.einsum("hrd,hkd->hrk", q[:, plan.assigned_tokens].float(), k.float()) * scale
    log_on = torch.logsumexp(logits.masked_fill(~row_on[None], -torch.inf), -1)
    log_off = torch.logsumexp(logits.masked_fill(row_on[None], -torch.inf), -1)
    gap = log_on - log_off                                                                    # [N_h, A]
    low = torch.full_like(target, -60.0)
    high = torch.full_like(target, 60.0)
    for _ in range(40):
        middle = (low + high) / 2
        too_low = torch.sigmoid(middle[None] + gap).mean(0) < target
        low, high = torch.where(too_low, middle, low), torch.where(too_low, high, middle)
    return (low + high) / 2


try:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    CAN_SET_SDPA_PRIORITY = "set_priority" in inspect.signature(sdpa_kernel).parameters
except ImportError:
    CAN_SET_SDPA_PRIORITY = False


def masked_attention_priority() -> contextlib.AbstractContextManager:
    """SDPA backends for a masked call in ComfyUI's order, cuDNN first: PyTorch's own order ranks cuDNN last, and
    since the flash kernel takes no mask a masked call fell to the memory-efficient one, 2.3× slower than cuDNN's
    on an H200 (docs/measurements.md). Where an older PyTorch cannot set a priority, its default order, as
    ComfyUI does."""
    if not CAN_SET_SDPA_PRIORITY:
        return contextlib.nullcontext()
    return sdpa_kernel([SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                        SDPBackend.MATH], set_priority=True)


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """softmax(q·kᵀ/√d + mask)·v for q [N_h, M, d], k and v [N_h, L_text, d], mask [M, L_text] in q's dtype:
    [M, N_h·d]."""
    with masked_attention_priority():
        out = torch.nn.functional.scaled_dot_product_attention(q[None], k[None], v[None], attn_mask=mask[None, None])
    return out[0].transpose(0, 1).reshape(q.shape[1], -1)


def modulated_attention_rows(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: GuidancePlan,
                             step: StepMask) -> torch.Tensor:
    """softmax(q·kᵀ/√d + bias)·v on the plan's rows only (`step` one row per plan row): [R, N_h·d] in q's dtype.

    q: [N_h, L, d], k and v: [N_h, L_text, d]. One fused SDPA call over the affected rows (every other
    row keeps the host's own, unbiased attention output)."""
    return masked_attention(q[:, plan.rows], k, v, step.mask)
