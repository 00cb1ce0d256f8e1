"""Multiple-choice knowledge scored by option log-likelihood (works for base models: nothing is generated) or
by the option letter a model generates (CLiKA's protocol), and CLiKA's performance and consistency measures.

Each option is scored by the mean log-probability of its tokens after the question prompt (length-normalised,
so long options are not penalised for their length); the highest-scoring option is the model's answer.
Only the tokens after the longest common prefix of the item's options are scored, and the mean is over the
tokens that carry text (fairness rule 8): Gemma writes many Chinese and Japanese options with a bare "▁" piece
first, which would otherwise weigh 1/(n+1) in an n-token option's mean and favour short options. Where every
option starts with it, it is the common prefix and drops out; where only some do (most zh items), its
log-probability joins the next piece's and it does not count. `normalise="chars"` divides the summed
log-probability by the scored text's visible characters instead.
"""
from __future__ import annotations

import math
import re

import torch

from core.decoding import run_batches


def scored_from(tails: list[list[int]]) -> int:
    """Where an item's options start to differ: the length of their token ids' longest common prefix, kept
    short of the shortest option so that every option scores at least one token (identical options tie)."""
    shortest = min(len(t) for t in tails)
    n = 0
    while n < shortest - 1 and len({t[n] for t in tails}) == 1:
        n += 1
    return n


@torch.no_grad()
def option_scores(model, tok, prompts: list[str], completions: list[list[str]], batch_size: int = 16,
                  desc: str = "options", normalise: str = "tokens") -> list[list[float]]:
    """Per item and option: the summed log-probability of the completion's tokens after the options' common
    prefix (the prefix stays in the context) over the number of those tokens that carry text, or with
    normalise="chars" over the visible characters they spell."""
    if normalise not in ("tokens", "chars"):
        raise ValueError(f"normalise: expected tokens or chars, got {normalise!r}")
    blank: dict[int, bool] = {}   # token id -> decodes to whitespace only

    def divisor(scored: list[int]) -> int:
        if normalise == "chars":
            return max(1, sum(not c.isspace() for c in tok.decode(scored)))
        for i in scored:
            if i not in blank:
                blank[i] = not tok.decode([i]).strip()
        return max(1, sum(not blank[i] for i in scored))

    encoded = []   # (prompt + option ids, first scored position, divisor) per item and option
    for head, options in zip(tok(prompts).input_ids, completions):   # each prompt tokenized once
        tails = tok(options, add_special_tokens=False).input_ids
        common = scored_from(tails)
        encoded += [(head + tail, len(head) + common, divisor(tail[common:])) for tail in tails]
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    model.eval()
    order = sorted(range(len(encoded)), key=lambda j: len(encoded[j][0]))   # similar lengths batch together
    # whole batches per evaluation rank, halved on running out of memory (core.decoding.run_batches): right
    # padding, so a halved batch's shorter padding changes no real position's logits but for rounding
    done = run_batches(order, batch_size,
                       lambda batch: _batch_scores(model, [encoded[j] for j in batch], pad), desc)
    scores = [done[j] for j in range(len(encoded))]
    out, k = [], 0
    for cs in completions:
        out.append(scores[k:k + len(cs)])
        k += len(cs)
    return out


def _batch_scores(model, rows: list[tuple[list[int], int, int]], pad: int) -> list[float]:
    """option_scores of one batch of (ids, first scored position, divisor) rows, right-padded."""
    device = next(model.parameters()).device
    width = max(len(seq) for seq, _, _ in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, (seq, _, _) in enumerate(rows):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
    scores = []
    for row, (seq, start, per) in enumerate(rows):
        targets = torch.tensor(seq[start:], device=device)
        # normalise over the vocabulary at the scored positions only, not at every prompt position
        logprobs = torch.log_softmax(logits[row, start - 1: len(seq) - 1].float(), -1)
        scores.append(logprobs.gather(1, targets[:, None]).sum().item() / per)
    return scores


def scoring_signature(scoring: str, normalise: str | None) -> str:
    """How the answers were chosen, kept in the record's signatures."""
    if scoring == "letter":
        return "letter: the generated option letter"
    if normalise == "chars":
        return "loglik: log-probability per visible character after the options' common token prefix"
    return "loglik: log-probability per text-carrying token after the options' common token prefix"


def answer_text(options: list[str], index: int) -> str:
    """An answer as the record keeps it, "B. Paris": equal texts mean the same option index, so intervals
    computed from outputs and references agree with per_item.correct even where two options read the same."""
    return f"{chr(ord('A') + index)}. {options[index]}" if 0 <= index < len(options) else "(no option)"


def best_options(scores: list[list[float]]) -> list[int]:
    return [max(range(len(s)), key=s.__getitem__) for s in scores]


def letter_picks(outputs: list[str], n_options: list[int]) -> list[int]:
    """The option a generated answer names by its letter ("B", "B.", "(B) ..."); -1 when it names none."""
    picks = []
    for text, n in zip(outputs, n_options):
        match = re.match(r"\W*([A-Z])\b", text.strip())
        index = ord(match.group(1)) - ord("A") if match else -1
        picks.append(index if 0 <= index < n else -1)
    return picks


def score_choices(picks: list[int], labels: list[int], n_options: list[int],
                  signature: str | None = None) -> dict:
    """Accuracy, chance (the mean of 1/n, what answering at random scores), chance-corrected accuracy
    ((acc - 1/n) / (1 - 1/n), averaged over items with n options), and the share of answers at the most chosen
    option position (a model answering one position or letter for most items knows nothing: CLiKA's warning).
    An unreadable answer (-1) is wrong. `signature` says how answers were chosen (`scoring_signature`)."""
    correct = [int(p == y) for p, y in zip(picks, labels)]
    positions = [picks.count(i) for i in range(max(n_options))]
    return {
        "metrics": {
            "accuracy": sum(correct) / len(correct),
            "chance": sum(1 / n for n in n_options) / len(n_options),
            "chance_corrected": (sum((c - 1 / n) / (1 - 1 / n) for c, n in zip(correct, n_options))
                                 / len(correct)),
            "top_position_share": max(positions) / len(picks),
            "unreadable_rate": picks.count(-1) / len(picks),
        },
        "per_item": {"correct": correct, "pick": picks},
        "signatures": {"knowledge": signature} if signature else {},
    }


def relative_accuracy(acc_x: float, acc_en: float, chance: float) -> float | None:
    """CLiKA's performance level, normalised by chance as upstream CLiKA does: RA = max(0, (acc_X - c) /
    (acc_en - c)); None when English is not above chance (then there is nothing to be relative to). A model at
    chance in both languages gets None or 0, never the 1.0 that a ratio of raw accuracies gives it."""
    return max(0.0, (acc_x - chance) / (acc_en - chance)) if acc_en > chance else None


def accuracy_ratio(acc_x: float, acc_en: float) -> float | None:
    """The raw acc_X / acc_en (≈ 1 for a model at chance in both languages: a secondary column only)."""
    return acc_x / acc_en if acc_en else None


def independent_consistency(acc_en: float, acc_x: float) -> float | None:
    """The en-CO expected if the two languages' correct sets were independent, at their own accuracies a and
    b: E|C_en ∩ C_X| / E|C_en ∪ C_X| = ab / (a + b - ab). At chance in both (a = b = c) it is c / (2 - c)."""
    union = acc_en + acc_x - acc_en * acc_x
    return acc_en * acc_x / union if union else None


def chance_p_value(correct: int, n: int, chance: float) -> float:
    """One-sided binomial test: P(at least `correct` of n right when each is right at random with probability
    `chance`)."""
    if correct <= 0:
        return 1.0
    if chance <= 0:
        return 0.0
    if chance >= 1:
        return 1.0
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
             + i * math.log(chance) + (n - i) * math.log1p(-chance) for i in range(correct, n + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def en_consistency(correct_en: dict[str, int], correct_x: dict[str, int]) -> float | None:
    """CLiKA's consistency level, en-CO = |C_en ∩ C_X| / |C_en ∪ C_X| over the items answered correctly
    (by item id: the same question in both languages)."""
    c_en = {i for i, c in correct_en.items() if c}
    c_x = {i for i, c in correct_x.items() if c}
    union = c_en | c_x
    return len(c_en & c_x) / len(union) if union else None
