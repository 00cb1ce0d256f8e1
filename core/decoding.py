"""Batched decoding (greedy unless the experiment's decoding options say otherwise), optionally continuing
from per-item prior tokens (PreTTY).

Items are sorted by length so each batch holds similar lengths; left padding keeps every prompt's last
token next to the first generated one, and the KV cache makes each step one token of work.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from tqdm.auto import tqdm
from transformers import (LogitsProcessor, LogitsProcessorList, NoRepeatNGramLogitsProcessor,
                          RepetitionPenaltyLogitsProcessor, StoppingCriteria, StoppingCriteriaList)

from core.pieces import TextPieces
from core.prompts import first_line


@dataclass
class Generation:
    prior_ids: list[int]
    new_ids: list[int]
    text: str          # prior + continuation, first line, stripped
    steps: int = 0     # decode steps this row really took: its new ids and the stop token that ended them
    hit_limit: bool = False   # ended by max_new_tokens, not by a stop token (a degeneration signal)


class _OnAnswer(LogitsProcessor):
    """A transformers logits processor that sees only the tokens generated so far. transformers' repetition
    penalty and n-gram block count the prompt of a decoder-only model too: an arm with demonstrations in its
    prompt (or a prior in its input) would be penalised on far more tokens than a zero-shot arm."""

    def __init__(self, inner: LogitsProcessor, width: int):
        self.inner, self.width = inner, width

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return self.inner(input_ids[:, self.width:], scores)


def _answer_processors(options: dict, width: int) -> tuple[dict, LogitsProcessorList]:
    """The decoding options `generate` takes as they are (num_beams), and the rest as processors of the
    answer's own tokens."""
    rest, processors = dict(options), LogitsProcessorList()
    if (penalty := rest.pop("repetition_penalty", None)) is not None:
        processors.append(_OnAnswer(RepetitionPenaltyLogitsProcessor(penalty), width))
    if (size := rest.pop("no_repeat_ngram_size", None)) is not None:
        processors.append(_OnAnswer(NoRepeatNGramLogitsProcessor(size), width))
    return rest, processors


@lru_cache(maxsize=4)
def _newline_ids(tok) -> tuple[int, ...]:
    """Every token whose text holds a newline: as extra end-of-sequence ids, each row stops at its first line
    at the cost of one id lookup per step (transformers' stop_strings re-decodes text at every step)."""
    texts = tok.batch_decode([[i] for i in range(len(tok))])
    return tuple(i for i, text in enumerate(texts) if "\n" in text)


class _UntilTextPieces(StoppingCriteria):
    """Ends each row at its k-th text-carrying new piece (`core.pieces.TextPieces`, or another counter of
    units with its interface) and remembers how many new ids that took; a row already ended by a stop token
    is left alone."""

    def __init__(self, tok, width: int, rows: int, k: int, stops: set[int], units=TextPieces):
        self.width, self.k, self.stops = width, k, stops
        self.counters = [units(tok) for _ in range(rows)]
        self.ended = [False] * rows
        self.done_at: list[int | None] = [None] * rows

    def __call__(self, input_ids, scores, **_) -> torch.BoolTensor:
        for row, ids in enumerate(input_ids[:, self.width:].tolist()):
            if self.ended[row] or self.done_at[row] is not None:
                continue
            if ids[-1] in self.stops:
                self.ended[row] = True
                continue
            counter = self.counters[row]
            counter.add(ids)
            if len(counter.ends) >= self.k:
                # a unit may end before the piece that showed it
                self.done_at[row] = counter.ends[self.k - 1]
        finished = [e or d is not None for e, d in zip(self.ended, self.done_at)]
        return torch.tensor(finished, device=input_ids.device)


def left_padded(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ids and attention mask of one batch, padded on the left: every row's last prompt token sits next to
    its first generated one."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, r in enumerate(rows):
        ids[row, width - len(r):] = torch.tensor(r)
        mask[row, width - len(r):] = 1
    return ids, mask


@torch.no_grad()
def generate(model, tok, prompts: list[str], priors: list[list[int]] | None = None, *, max_new_tokens: int,
             batch_size: int, stop_at_newline: bool = True, text_pieces: int | None = None, units=TextPieces,
             desc: str = "generate", options: dict | None = None) -> list[Generation]:
    """The prior counts inside `max_new_tokens`: after a prior of p tokens a row decodes at most
    max_new_tokens - p more (a longer prior is cut to max_new_tokens), so a PreTTY arm writes no more tokens
    than base or SFT. `text_pieces`: each row also stops at its k-th new piece that carries text (or k-th unit
    of another `units` counter, e.g. `eval.pos.TagPairs`). `options`: decoding options passed to
    `model.generate` (num_beams; see `EvalSpec.decoding`); repetition_penalty and no_repeat_ngram_size act on
    the generated tokens alone (`_OnAnswer`), so every arm is penalised on its own answer only."""
    priors = [list(p)[:max_new_tokens] for p in priors] if priors else [[] for _ in prompts]
    inputs = [tok(p).input_ids + prior for p, prior in zip(prompts, priors)]
    allowed = [max_new_tokens - len(prior) for prior in priors]
    order = sorted(range(len(inputs)), key=lambda i: -len(inputs[i]))
    out: list[Generation | None] = [None] * len(inputs)
    eos = [tok.eos_token_id, *(_newline_ids(tok) if stop_at_newline else ())]
    stops = set(eos)
    device = model.device
    for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch", leave=False):
        idx = order[start:start + batch_size]
        ids, mask = left_padded([inputs[i] for i in idx], tok.pad_token_id)
        width = ids.shape[1]
        # one call for the batch, as long as its longest allowance; each row is cut to its own afterwards
        # (greedy decoding: a row's first n ids do not depend on how many follow)
        longest = max(allowed[i] for i in idx)
        until = _UntilTextPieces(tok, width, len(idx), text_pieces, stops, units) if text_pieces else None
        gen = ids
        if longest > 0:
            passed, processors = _answer_processors(options or {}, width)
            gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=False,
                                 max_new_tokens=longest, pad_token_id=tok.pad_token_id, eos_token_id=eos,
                                 top_p=None, top_k=None, temperature=None, logits_processor=processors,
                                 **passed,
                                 **({"stopping_criteria": StoppingCriteriaList([until])} if until else {}))
        for row, i in enumerate(idx):
            new = gen[row, width:].tolist()[:allowed[i]]
            stop = next((j for j, t in enumerate(new) if t in stops), None)   # padding follows a stop
            done = until.done_at[row] if until else None
            end = min(j for j in (stop, done, len(new)) if j is not None)
            new = new[:end]
            text = tok.decode(priors[i] + new, skip_special_tokens=True)
            out[i] = Generation(priors[i], new, first_line(text) if stop_at_newline else text.strip(),
                                end + 1 if end == stop else end,
                                hit_limit=stop is None and done is None and len(new) >= allowed[i])
    return out  # type: ignore[return-value]
