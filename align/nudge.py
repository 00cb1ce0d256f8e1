"""Nudging (Fei et al. 2024, "Nudging: inference-time alignment via model collaboration"): the base model
decodes, and wherever it is unsure of its next token (top-1 probability below a threshold) the aligned model
supplies that token instead.

The paper's hypothesis is that alignment mostly changes the tokens where the base model is unsure, most of
them among an answer's first tokens; so a few aligned tokens should steer the base model to the aligned
answer at a fraction of the aligned model's decoding cost. `NudgeItem` records which tokens were supplied and
what the aligned model really computed, so that the cost can be charged honestly.

The loop reproduces `core.decoding.generate` (same order, batches, left padding, position ids, stop rules and
`Generation`s) so that threshold 0 is exactly the base arm and threshold 1 exactly the aligned one.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from core.decoding import Generation, _newline_ids, left_padded
from core.prompts import first_line


@dataclass
class NudgeItem:
    """`supplied`: the decode steps (0-based: the new ids, then the stop token that ended them, as
    `Generation.steps` counts) whose token came from the aligned model. `aligned_calls`: the aligned model's
    forward passes while this row was in its batch, prefill included (also after the row stopped: the batch
    pays for them). `aligned_positions`: the positions beyond the (padded) prompt the aligned model computed
    for this row, catch-up columns and decode steps alike."""
    supplied: list[int] = field(default_factory=list)
    aligned_calls: int = 0
    aligned_positions: int = 0


class _Stream:
    """One model's KV cache over the batch's shared sequence, fed the columns it has not seen yet."""

    def __init__(self, model):
        self.model, self.cache, self.fed = model, None, 0
        # as generate: only the last position's logits are needed, and the lm head is the widest matmul
        self.keep = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters \
            else {}

    def logits(self, seq: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Float32 next-token logits after the whole of `seq` (batch x columns), on the model's device (a
        vocabulary-wide row per item is too much to copy back at every step)."""
        device = self.model.device
        new = seq[:, self.fed:]
        if mask is not None:
            # generate's position ids: left padding must not shift the real tokens' positions
            positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
            kwargs = {"attention_mask": mask.to(device), "position_ids": positions[:, self.fed:].to(device)}
        else:
            # generate drops an all-ones mask (another attention path); its positions are then plain counts
            positions = torch.arange(self.fed, seq.shape[1], device=device).repeat(seq.shape[0], 1)
            kwargs = {"position_ids": positions}
        out = self.model(input_ids=new.to(device), past_key_values=self.cache, use_cache=True,
                         return_dict=True, **kwargs, **self.keep)
        self.cache, self.fed = out.past_key_values, seq.shape[1]
        return out.logits[:, -1].float()


@torch.no_grad()
def nudge_generate(base, aligned, tok, prompts: list[str], *, threshold: float, max_new_tokens: int,
                   batch_size: int, stop_at_newline: bool = True,
                   desc: str = "nudge") -> tuple[list[Generation], list[NudgeItem]]:
    """Greedy decoding by `base`, each token where base's top-1 probability is below `threshold` taken from
    `aligned` instead (both share `tok`). Threshold >= 1 takes every token from `aligned`, also where fp32
    rounds a probability to exactly 1. Returns one `Generation` (as `core.decoding.generate` builds it) and
    one `NudgeItem` per prompt, in the prompts' order."""
    inputs = [tok(p).input_ids for p in prompts]
    order = sorted(range(len(inputs)), key=lambda i: -len(inputs[i]))
    gens: list[Generation | None] = [None] * len(inputs)
    items = [NudgeItem() for _ in inputs]
    stop_ids = {tok.eos_token_id, *(_newline_ids(tok) if stop_at_newline else ())}
    stops = torch.tensor(sorted(stop_ids))
    always = threshold >= 1.0
    for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch", leave=False):
        idx = order[start:start + batch_size]
        seq, mask = left_padded([inputs[i] for i in idx], tok.pad_token_id)
        width = seq.shape[1]
        padded = not bool(mask.all())
        lead, follow = _Stream(base), _Stream(aligned)
        running = torch.ones(len(idx), dtype=torch.bool)
        for step in range(max(max_new_tokens, 0)):
            logits = lead.logits(seq, mask if padded else None)
            chosen = logits.argmax(-1).cpu()
            # compared in float64, so that a threshold is not rounded to float32 first
            unsure = running.clone() if always else \
                running & (torch.softmax(logits, -1).max(-1).values.cpu().double() < threshold)
            if unsure.any():
                # lazily: the aligned cache catches up on every column since its last call in one forward
                beyond = seq.shape[1] - max(follow.fed, width)
                supplied = follow.logits(seq, mask if padded else None).argmax(-1).cpu()
                chosen = torch.where(unsure, supplied, chosen)
                for i in idx:
                    items[i].aligned_calls += 1
                    items[i].aligned_positions += beyond
                for row in unsure.nonzero().flatten().tolist():
                    items[idx[row]].supplied.append(step)
            # as generate: a finished row goes on with pad tokens (mask 1), which no other row attends to
            chosen = torch.where(running, chosen, torch.tensor(tok.pad_token_id))
            seq = torch.cat([seq, chosen[:, None]], dim=1)
            mask = torch.cat([mask, mask.new_ones((len(idx), 1))], dim=1)
            running &= ~torch.isin(chosen, stops)
            if not running.any():
                break
        for row, i in enumerate(idx):
            new = seq[row, width:].tolist()[:max_new_tokens]
            stop = next((j for j, t in enumerate(new) if t in stop_ids), None)   # padding follows a stop
            end = len(new) if stop is None else stop
            new = new[:end]
            text = tok.decode(new, skip_special_tokens=True)
            gens[i] = Generation([], new, first_line(text) if stop_at_newline else text.strip(),
                                 end + 1 if stop is not None else end,
                                 hit_limit=stop is None and len(new) >= max_new_tokens)
    return gens, items  # type: ignore[return-value]
