"""Batched greedy decoding, optionally continuing from per-item prior tokens (PreTTY).

Items are sorted by length so each batch holds similar lengths; left padding keeps every prompt's last
token next to the first generated one, and the KV cache makes each step one token of work.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from tqdm.auto import tqdm

from core.prompts import first_line


@dataclass
class Generation:
    prior_ids: list[int]
    new_ids: list[int]
    text: str          # prior + continuation, first line, stripped


@lru_cache(maxsize=4)
def _newline_ids(tok) -> tuple[int, ...]:
    """Every token whose text holds a newline: as extra end-of-sequence ids, each row stops at its first line
    at the cost of one id lookup per step (transformers' stop_strings re-decodes text at every step)."""
    texts = tok.batch_decode([[i] for i in range(len(tok))])
    return tuple(i for i, text in enumerate(texts) if "\n" in text)


@torch.no_grad()
def generate(model, tok, prompts: list[str], priors: list[list[int]] | None = None, *, max_new_tokens: int,
             batch_size: int, stop_at_newline: bool = True, desc: str = "generate") -> list[Generation]:
    priors = priors or [[] for _ in prompts]
    inputs = [tok(p).input_ids + list(prior) for p, prior in zip(prompts, priors)]
    order = sorted(range(len(inputs)), key=lambda i: -len(inputs[i]))
    out: list[Generation | None] = [None] * len(inputs)
    eos = [tok.eos_token_id, *(_newline_ids(tok) if stop_at_newline else ())]
    stops = set(eos)
    device = model.device
    for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch", leave=False):
        idx = order[start:start + batch_size]
        width = max(len(inputs[i]) for i in idx)
        ids = torch.full((len(idx), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            ids[row, width - len(inputs[i]):] = torch.tensor(inputs[i])
            mask[row, width - len(inputs[i]):] = 1
        gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=False,
                             max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                             eos_token_id=eos, top_p=None, top_k=None, temperature=None)
        for row, i in enumerate(idx):
            new = gen[row, width:].tolist()
            new = new[:next((j for j, t in enumerate(new) if t in stops), len(new))]  # padding follows a stop
            text = tok.decode(list(priors[i]) + new, skip_special_tokens=True)
            out[i] = Generation(list(priors[i]), new, first_line(text) if stop_at_newline else text.strip())
    return out  # type: ignore[return-value]
