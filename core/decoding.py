"""Batched decoding (greedy unless the experiment's decoding options say otherwise), optionally continuing
from per-item prior tokens (PreTTY).

Items are sorted by length so each batch holds similar lengths; left padding keeps every prompt's last
token next to the first generated one, and the KV cache makes each step one token of work.

Under several evaluation ranks (eval/ranks.py) each rank decodes whole batches of that one-rank order and
every rank receives every result (`run_batches`); a batch that runs out of device memory is halved and
retried.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from typing import Any, Callable

import torch
import torch.distributed as dist
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


# ---------------------------------------------------------------- batches over ranks
_sharded = False   # set by join_ranks(): only evaluation ranks split batches (never a training job's group)


def join_ranks() -> None:
    """This process's place among the ranks the DeepSpeed launcher started (WORLD_SIZE, RANK, MASTER_ADDR and
    MASTER_PORT): a gloo group, as the ranks exchange Python objects (outputs, scores), never large tensors;
    on a GPU machine, this rank's own device first, so that every model loads onto it. One rank: nothing."""
    global _sharded
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    # generous: a rank waits at each gather for the slowest rank's share of batches
    dist.init_process_group("gloo", timeout=timedelta(hours=6))
    _sharded = True


def leave_ranks() -> None:
    """The group's end, once this rank has taken part in every gather."""
    global _sharded
    if _sharded:
        dist.destroy_process_group()
        _sharded = False


class RankLost(RuntimeError):
    """A gather failed because another rank ended (killed, or failed itself): that rank is the cause."""


def world() -> tuple[int, int]:
    """(this rank, number of ranks): (0, 1) outside evaluation ranks."""
    return (dist.get_rank(), dist.get_world_size()) if _sharded else (0, 1)


@dataclass
class Batches:
    """How one evaluation's batches ran, over every rank: sizes batches were halved to after running out of
    memory (empty: none was)."""
    halved: list[int] = field(default_factory=list)
    told: bool = False
    work_s: float = 0.0     # seconds every rank spent computing its batches, summed over the ranks
    inside_s: float = 0.0   # seconds this rank spent in run_batches: its batches and waiting at the gathers

    def device_seconds(self, wall_s: float) -> float:
        """An evaluation's device-seconds from this rank's wall time: the work outside the batches (priors,
        demonstrations: on each rank alike, counted once) plus every rank's batch work. Not wall x ranks: a
        rank idle at a gather (fewer batches than ranks, a slower peer) computes nothing for the items, and
        one rank's figure is its wall time, as before."""
        return wall_s - self.inside_s + self.work_s

    def as_record(self, batch_size: int, ranks: int) -> dict:
        """The record's `eval_batching`: the configured size, the smallest a halved batch ran at (the
        configured size when none was halved), how many halvings, and the ranks that evaluated."""
        return {"batch_size": batch_size, "batch_size_used": min(self.halved, default=batch_size),
                "halved": len(self.halved), "ranks": ranks}


_batches = Batches()


def track_batches() -> Batches:
    """A fresh tally that every later batch (until the next call) is counted in: one per record."""
    global _batches
    _batches = Batches()
    return _batches


def out_of_memory(e: BaseException) -> bool:
    return isinstance(e, torch.cuda.OutOfMemoryError) or (
        isinstance(e, RuntimeError) and "out of memory" in str(e).lower())


def _fitting(step: Callable[[list[int]], list], batch: list[int], halved: list[int]) -> list:
    """step's results for a batch's rows; a batch that runs out of memory is halved and each half run in turn
    (again halved if need be). Halving changes the padding of those rows only (a batch is padded to its
    longest row): their outputs may differ from a run where the batch fitted, no other row's do."""
    try:
        return step(batch)
    except RuntimeError as e:
        if len(batch) == 1 or not out_of_memory(e):
            raise
    # outside the handler: the failed attempt's tensors, which its traceback holds, are freed first
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    half = (len(batch) + 1) // 2
    halved.append(len(batch) - half)
    return _fitting(step, batch[:half], halved) + _fitting(step, batch[half:], halved)


def _tell(halved: list[int], desc: str) -> None:
    _batches.halved += halved
    if halved and not _batches.told and world()[0] == 0:
        _batches.told = True
        print(f"[eval] {desc}: out of memory: {len(halved)} batch(es) halved, down to "
              f"{min(halved)} rows (only their rows' padding changes; a smaller eval.batch_size avoids it)",
              flush=True)


def run_batches(order: list[int], batch_size: int, step: Callable[[list[int]], list], desc: str,
                local: bool = False) -> dict[int, Any]:
    """step(rows) -> one result per row, for each batch of `order`, batch_size rows at a time: {row: result}.
    Under several ranks batch i runs on rank i % ranks: whole batches of the one-rank order, so the padding,
    and so every output, is what one rank computes; every rank gets every result. `local`: this process runs
    every batch itself (a warm-up), uncounted."""
    rank, ranks = (0, 1) if local else world()
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    done, halved, entered = {}, [], time.time()
    for batch in tqdm(batches[rank::ranks], desc=desc, unit="batch", leave=False, disable=rank != 0):
        done.update(zip(batch, _fitting(step, batch, halved)))
    work = time.time() - entered
    if ranks > 1:
        parts: list = [None] * ranks
        try:
            dist.all_gather_object(parts, (done, halved, work))
        except RuntimeError as e:   # gloo: "Connection closed by peer", the moment another rank dies
            raise RankLost(f"{desc}: another evaluation rank ended during a gather ({e})") from e
        done = {i: r for part, _, _ in parts for i, r in part.items()}
        halved = [n for _, part, _ in parts for n in part]
        work = sum(w for _, _, w in parts)
    if not local:
        _batches.work_s += work
        _batches.inside_s += time.time() - entered
        _tell(halved, desc)
    return done


# ---------------------------------------------------------------- decoding
@torch.no_grad()
def generate(model, tok, prompts: list[str], priors: list[list[int]] | None = None, *, max_new_tokens: int,
             batch_size: int, stop_at_newline: bool = True, text_pieces: int | None = None, units=TextPieces,
             desc: str = "generate", options: dict | None = None, local: bool = False) -> list[Generation]:
    """The prior counts inside `max_new_tokens`: after a prior of p tokens a row decodes at most
    max_new_tokens - p more (a longer prior is cut to max_new_tokens), so a PreTTY arm writes no more tokens
    than base or SFT. `text_pieces`: each row also stops at its k-th new piece that carries text (or k-th unit
    of another `units` counter, e.g. `eval.pos.TagPairs`). `options`: decoding options passed to
    `model.generate` (num_beams; see `EvalSpec.decoding`); repetition_penalty and no_repeat_ngram_size act on
    the generated tokens alone (`_OnAnswer`), so every arm is penalised on its own answer only. Batches are
    shared among evaluation ranks (`run_batches`; `local`: not, e.g. a warm-up)."""
    priors = [list(p)[:max_new_tokens] for p in priors] if priors else [[] for _ in prompts]
    inputs = [tok(p).input_ids + prior for p, prior in zip(prompts, priors)]
    allowed = [max_new_tokens - len(prior) for prior in priors]
    order = sorted(range(len(inputs)), key=lambda i: -len(inputs[i]))
    eos = [tok.eos_token_id, *(_newline_ids(tok) if stop_at_newline else ())]
    stops = set(eos)

    def batch(idx: list[int]) -> list[Generation]:
        ids, mask = left_padded([inputs[i] for i in idx], tok.pad_token_id)
        width = ids.shape[1]
        # one call for the batch, as long as its longest allowance; each row is cut to its own afterwards
        # (greedy decoding: a row's first n ids do not depend on how many follow)
        longest = max(allowed[i] for i in idx)
        until = _UntilTextPieces(tok, width, len(idx), text_pieces, stops, units) if text_pieces else None
        gen = ids
        if longest > 0:
            passed, processors = _answer_processors(options or {}, width)
            gen = model.generate(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                                 do_sample=False, max_new_tokens=longest, pad_token_id=tok.pad_token_id,
                                 eos_token_id=eos, top_p=None, top_k=None, temperature=None,
                                 logits_processor=processors, **passed,
                                 **({"stopping_criteria": StoppingCriteriaList([until])} if until else {}))
        return [_row(tok, gen[row, width:].tolist()[:allowed[i]], priors[i], allowed[i], stops,
                     until.done_at[row] if until else None, stop_at_newline) for row, i in enumerate(idx)]

    done = run_batches(order, batch_size, batch, desc, local)
    return [done[i] for i in range(len(inputs))]


def _row(tok, new: list[int], prior: list[int], allowed: int, stops: set[int], done: int | None,
         stop_at_newline: bool) -> Generation:
    """One row's Generation from its new ids: cut at its first stop token or at its k-th text piece."""
    stop = next((j for j, t in enumerate(new) if t in stops), None)   # padding follows a stop
    end = min(j for j in (stop, done, len(new)) if j is not None)
    new = new[:end]
    text = tok.decode(prior + new, skip_special_tokens=True)
    return Generation(prior, new, first_line(text) if stop_at_newline else text.strip(),
                      end + 1 if end == stop else end,
                      hit_limit=stop is None and done is None and len(new) >= allowed)
