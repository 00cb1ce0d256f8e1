"""PreTTY prior sources: where the first k answer tokens come from before the base model takes over.

Every source returns, per test item, the token ids of k pieces of the answer in the *base* model's tokenizer,
plus what it cost and how many characters of text the prior holds. k counts pieces that carry text
(`take_text_pieces`): Gemma writes " 这是一个" as ['▁', '这是一个'] and " 1984" as ['▁', '1', '9', ...], so a
bare '▁' would be a whole prior of k = 1 in Chinese and nothing of one in German. A task may count other units
(`units`, a counter with `TextPieces`' interface): a POS answer in word/TAG pairs counts tags
(`eval.pos.TagPairs`: k = 2 is " The/DET cat/NOUN", the words copied from the prompt around the tags; such a
counter also reads the units of a whole text, `units_of`).
Priors that are text (a reference, another tokenizer's output) are tokenized as TRL tokenizes training rows:
prompt and completion (" " + text) together, the completion being the ids after the prompt's own.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from align.lexicon import induce, read_dictionary, stopwords_for
from core.decoding import generate
from core.ledger import Cost
from core.pieces import TextPieces, take_text_pieces, text_piece_ends
from core.prompts import translation_completion


@dataclass
class Priors:
    ids: list[list[int]]
    cost: Cost = field(default_factory=Cost)
    weights: dict | None = None  # the checkpoint a model prior came from
    note: str = ""
    chars: list[int] = field(default_factory=list)   # each item's prior, in characters of text

    @property
    def chars_mean(self) -> float:
        return sum(self.chars) / len(self.chars) if self.chars else 0.0


def _priors(tok, ids: list[list[int]], *args, **kwargs) -> Priors:
    chars = [len(tok.decode(i, skip_special_tokens=True).strip()) for i in ids]
    return Priors(ids, *args, **kwargs, chars=chars)


def completion_ids(tok, prompts: list[str | None], completions: list[str]) -> tuple[list[list[int]], int]:
    """Each completion's ids as the model sees them after its prompt, as TRL tokenizes prompt-completion rows:
    tok(prompt + completion) after the prompt's own ids. Where the prompt's ids are not a prefix of the joint
    ones (a piece straddles the boundary), or no prompt is given, the completion is tokenized on its own; the
    second value counts those fallbacks."""
    alone = tok(completions, add_special_tokens=False).input_ids if completions else []
    given = [i for i, p in enumerate(prompts) if p is not None]
    special = set(tok.all_special_ids)
    out, fallbacks = list(alone), len(completions) - len(given)
    if given:
        prompt_ids = tok([prompts[i] for i in given]).input_ids
        joint = tok([prompts[i] + completions[i] for i in given]).input_ids
        for i, p, j in zip(given, prompt_ids, joint):
            if j[:len(p)] == p:
                out[i] = [t for t in j[len(p):] if t not in special]   # e.g. an EOS some tokenizers append
            else:
                fallbacks += 1
    return out, fallbacks


def take_units(tok, ids: list[int], k: int, units=TextPieces) -> list[int]:
    """The ids of the first k units (by default pieces that carry text); all of `ids` when they hold fewer."""
    if units is TextPieces or k == 0:
        return take_text_pieces(tok, ids, k)
    counter = units(tok)
    for j in range(1, len(ids) + 1):
        if len(counter.ends) >= k:
            break
        counter.add(ids[:j])
    return list(ids[:counter.ends[k - 1]]) if len(counter.ends) >= k else list(ids)


def text_priors(tok, texts: list[str], k: int, prompts: list[str] | None = None,
                units=TextPieces) -> tuple[list[list[int]], int]:
    """The first k units (text-carrying pieces) of each text read as the completion of its prompt; empty text
    gives no prior. Also the number of texts tokenized without their prompt (see `completion_ids`)."""
    texts = [t.strip() for t in texts]
    keep = [i for i, t in enumerate(texts) if t and k > 0]
    ids, fallbacks = completion_ids(tok, [prompts[i] if prompts else None for i in keep],
                                    [translation_completion(texts[i]) for i in keep])
    out: list[list[int]] = [[] for _ in texts]
    for i, c in zip(keep, ids):
        out[i] = take_units(tok, c, k, units)
    return out, fallbacks


def text_prior(tok, text: str, k: int, prompt: str | None = None) -> list[int]:
    """One text's prior (see `text_priors`)."""
    return text_priors(tok, [text], k, [prompt] if prompt is not None else None)[0][0]


def _fallback_note(fallbacks: int, n: int, what: str = "items") -> str:
    return f"; {fallbacks}/{n} {what} tokenized apart from their prompt" if fallbacks else ""


def oracle(tok, references: list[str], k: int, prompts: list[str] | None = None, units=TextPieces,
           **_) -> Priors:
    ids, fallbacks = text_priors(tok, references, k, prompts, units)
    return _priors(tok, ids, note="oracle: first reference tokens - an upper bound, not a deployable result"
                   + _fallback_note(fallbacks, len(references)))


def frequent(tok, references: list[str], k: int, train_targets: list[str],
             train_prompts: list[str] | None = None, units=TextPieces, words: list[list[str]] | None = None,
             prompts: list[str] | None = None, **_) -> Priors:
    """The most frequent first-k pieces of the budget's target sides (after their own prompts): one prior for
    every item. Counted in tag pairs, the most frequent first k tags, each after its item's word."""
    if units is not TextPieces:
        return _frequent_tags(tok, k, train_targets, prompts=prompts, words=words, units=units)
    firsts, fallbacks = text_priors(tok, train_targets, k, train_prompts)
    counts = Counter(tuple(f) for f in firsts)
    top = list(counts.most_common(1)[0][0]) if counts else []
    share = f"{counts.most_common(1)[0][1] if counts else 0}/{len(train_targets)}"
    note = (f"frequent: {tok.decode(top)!r} ({share} targets)"
            + _fallback_note(fallbacks, len(train_targets), "targets"))
    return _priors(tok, [top for _ in references], Cost(train_examples=len(train_targets)), note=note)


def _frequent_tags(tok, k: int, train_targets: list[str], *, prompts: list[str] | None,
                   words: list[list[str]], units) -> Priors:
    counts = Counter(tuple(units.units_of(t)[:k]) for t in train_targets)
    top, n = counts.most_common(1)[0] if counts else ((), 0)
    texts = [" ".join(f"{w}/{t}" for w, t in zip(item_words, top)) for item_words in words]
    ids, fallbacks = text_priors(tok, texts, k, prompts, units)
    note = (f"frequent: {' '.join(top)!r} ({n}/{len(train_targets)} targets), after each item's words"
            + _fallback_note(fallbacks, len(texts)))
    return _priors(tok, ids, Cost(train_examples=len(train_targets)), note=note)


def dictionary(tok, references: list[str], k: int, *, sources: list[str], src_lang: str,
               train_pairs: list[tuple[str, str]], dictionary_path: str | None = None, n_words: int = 1,
               prompts: list[str] | None = None, **_) -> Priors:
    """The translation of each source sentence's first content word(s), from a dictionary file or else from a
    lexicon induced from the budget's pairs: no model runs."""
    stop = stopwords_for(src_lang)
    lexicon = (read_dictionary(dictionary_path, stop) if dictionary_path
               else induce(train_pairs, stopwords=stop))
    words = [lexicon.first_content_translation(s, n_words) for s in sources]
    ids, fallbacks = text_priors(tok, words, k, prompts)
    origin = dictionary_path or f"induced from {len(train_pairs)} pairs"
    return _priors(tok, ids, Cost() if dictionary_path else Cost(train_examples=len(train_pairs)),
                   note=f"dictionary ({origin}, {len(lexicon)} entries): a prior for "
                        f"{sum(map(bool, ids))}/{len(ids)} items" + _fallback_note(fallbacks, len(ids)))


def from_model(tok, references: list[str], k: int, prompts: list[str], model_loader: Callable, weights: dict,
               train_cost: Cost, batch_size: int, train_targets: list[str], units=TextPieces, **_) -> Priors:
    """The first k text-carrying greedy pieces (or other units) of another model: the run's SFT or LoRA
    checkpoint, or any task model. Charged the decode steps each item's prior really took.

    A model with another tokenizer generates as many of its own tokens as k base pieces of text usually take,
    and its text is tokenized as the base model would read it after the prompt."""
    if k == 0:
        return _priors(tok, [[] for _ in references])
    model, model_tok = model_loader()
    same_vocab = model_tok.get_vocab() == tok.get_vocab()
    fallbacks = 0
    if same_vocab:
        # each row stops at its k-th text-carrying piece; the cap only bounds a degenerate run of whitespace
        # or byte pieces (a character is at most 4 byte pieces, each may follow a whitespace piece)
        # a tag pair copies a word first: a long one takes several pieces; a pairs answer ends at its line
        pairs = units is not TextPieces
        gens = generate(model, model_tok, prompts, max_new_tokens=(12 if pairs else 5) * k + 8,
                        batch_size=batch_size, stop_at_newline=pairs, text_pieces=k, units=units,
                        desc=f"prior k={k}")
        ids = [g.new_ids for g in gens]
    else:
        n = _task_tokens(k, tok, model_tok, train_targets, units)
        gens = generate(model, model_tok, prompts, max_new_tokens=n, batch_size=batch_size,
                        stop_at_newline=False, desc=f"prior k={k}")
        texts = [complete_text(model_tok.decode(g.new_ids, skip_special_tokens=True),
                               cut_off=len(g.new_ids) == n) for g in gens]
        ids, fallbacks = text_priors(tok, texts, k, prompts, units)
    steps = sum(g.steps for g in gens) / max(len(gens), 1)
    cost = Cost(**{**train_cost.as_dict(), "extra_model_calls_per_item": 1.0,
                   "extra_decode_steps_per_item": steps})
    note = "" if same_vocab else (f"another tokenizer: up to {n} task-model tokens for k={k} base pieces"
                                  + _fallback_note(fallbacks, len(ids)))
    return _priors(tok, ids, cost, weights, note)


def _task_tokens(k: int, tok, model_tok, texts: list[str], units=TextPieces) -> int:
    """Task-model tokens for k base pieces of text (or other units), by the two tokenizers' lengths on the
    budget's targets (a character-level model needs several tokens per base piece), with 3 units to spare for
    a cut-off last word."""
    sample = [translation_completion(t) for t in texts[:256]]
    if units is TextPieces:
        base = sum(len(text_piece_ends(tok, tok(t, add_special_tokens=False).input_ids)) for t in sample)
    else:
        base = sum(len(units.units_of(t)) for t in sample)
    task = sum(len(model_tok(t, add_special_tokens=False).input_ids) for t in sample)
    return math.ceil((k + 3) * (task / base if base else 1.0))


def complete_text(text: str, cut_off: bool) -> str:
    """The part of another model's generation that the base tokenizer can take as written: the answer ends at
    a newline, bytes of an unfinished character (decoded as U+FFFD) are dropped, and a generation cut off at
    the token limit loses its last word if more than one is left: it may be partial ("spr" of "sprach") and
    would tokenize into pieces the base model would not write. Text without spaces (CJK) has no word to
    drop."""
    answer, newline, _ = text.partition("\n")
    answer = answer.rstrip("\ufffd")
    if newline or not cut_off or answer[-1:].isspace() or len(answer.split()) < 2:
        return answer
    return answer.rstrip().rsplit(None, 1)[0]


@dataclass(frozen=True)
class PriorSource:
    """A registered prior source. `build(tok, references, k, **inputs)` returns the items' Priors; `needs`:
    None (the budget's rows are enough), "arm" (a training arm of the run, of method `arm_method`, named by
    from_arm) or "model" (an outside model, task_model); `deployable`: False for an upper bound, which the
    report keeps off Pareto fronts and break-even; `tasks`: the tasks it gives priors for (None: every
    generating task)."""
    name: str
    build: Callable[..., Priors]
    needs: str | None = None
    arm_method: str | None = None
    deployable: bool = True
    tasks: tuple[str, ...] | None = None


PRIORS: dict[str, PriorSource] = {}


def register_prior(source: PriorSource) -> PriorSource:
    """`prior: <source.name>` becomes valid in every config validated after this call. What a source declares
    is checked here, at import, not when an arm reaches evaluation."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,40}", source.name):
        raise ValueError(f"prior source name {source.name!r}: letters, digits and _ (it names arms: "
                         "pretty-<name>-k1)")
    if source.needs not in (None, "arm", "model"):
        raise ValueError(f"prior source {source.name!r}: needs={source.needs!r}, not None, 'arm' or "
                         "'model'")
    if (source.needs == "arm") != (source.arm_method is not None):
        raise ValueError(f"prior source {source.name!r}: needs='arm' and arm_method (the training arm's "
                         "method, e.g. 'sft') go together")
    if source.name in PRIORS and PRIORS[source.name] != source:
        raise ValueError(f"prior source {source.name!r} is registered twice")
    PRIORS[source.name] = source
    return source


for _source in (PriorSource("oracle", oracle, deployable=False), PriorSource("frequent", frequent),
                PriorSource("dictionary", dictionary, tasks=("mt",)),
                PriorSource("sft", from_model, needs="arm", arm_method="sft"),
                PriorSource("lora", from_model, needs="arm", arm_method="lora"),
                PriorSource("task_model", from_model, needs="model")):
    register_prior(_source)
