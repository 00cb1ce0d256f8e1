"""Multiple-choice knowledge scored by option log-likelihood (works for base models: nothing is generated) or by
the option letter a model generates (CLiKA's protocol), and CLiKA's performance and consistency measures.

Each option is scored by the mean log-probability of its tokens after the question prompt (length-normalised,
so long options are not penalised for their length); the highest-scoring option is the model's answer.
"""
from __future__ import annotations

import re

import torch
from tqdm import tqdm


@torch.no_grad()
def option_scores(model, tok, prompts: list[str], completions: list[list[str]], batch_size: int = 16,
                  desc: str = "options") -> list[list[float]]:
    """Mean log-probability of each completion's tokens given its prompt, per item and option."""
    encoded = []   # (prompt + option ids, prompt length) per item and option, each prompt tokenized once
    for head, options in zip(tok(prompts).input_ids, completions):
        encoded += [(head + tail, len(head)) for tail in tok(options, add_special_tokens=False).input_ids]
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    device = next(model.parameters()).device
    model.eval()
    order = sorted(range(len(encoded)), key=lambda j: len(encoded[j][0]))   # similar lengths batch together
    scores = [0.0] * len(encoded)
    for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch", leave=False):
        batch = order[start:start + batch_size]
        width = max(len(encoded[j][0]) for j in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, j in enumerate(batch):
            seq = encoded[j][0]
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        for row, j in enumerate(batch):
            seq, head = encoded[j]
            targets = torch.tensor(seq[head:], device=device)
            # normalise over the vocabulary at the option's positions only, not at every prompt position
            logprobs = torch.log_softmax(logits[row, head - 1: len(seq) - 1].float(), -1)
            scores[j] = logprobs.gather(1, targets[:, None]).mean().item()
    out, k = [], 0
    for cs in completions:
        out.append(scores[k:k + len(cs)])
        k += len(cs)
    return out


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


def score_choices(picks: list[int], labels: list[int], n_options: list[int]) -> dict:
    """Accuracy, chance-corrected accuracy ((acc - 1/n) / (1 - 1/n), averaged over items with n options), and
    the share of answers at the most chosen option position (a model answering one position or letter for most
    items knows nothing: CLiKA's warning). An unreadable answer (-1) is wrong."""
    correct = [int(p == y) for p, y in zip(picks, labels)]
    positions = [picks.count(i) for i in range(max(n_options))]
    return {
        "metrics": {
            "accuracy": sum(correct) / len(correct),
            "chance_corrected": sum((c - 1 / n) / (1 - 1 / n) for c, n in zip(correct, n_options)) / len(correct),
            "top_position_share": max(positions) / len(picks),
            "unreadable_rate": picks.count(-1) / len(picks),
        },
        "per_item": {"correct": correct, "pick": picks},
    }


def relative_accuracy(acc_x: float, acc_en: float) -> float | None:
    """CLiKA's performance level, RA = acc_X / acc_en."""
    return acc_x / acc_en if acc_en else None


def en_consistency(correct_en: dict[str, int], correct_x: dict[str, int]) -> float | None:
    """CLiKA's consistency level, en-CO = |C_en ∩ C_X| / |C_en ∪ C_X| over the items answered correctly
    (by item id: the same question in both languages)."""
    c_en = {i for i, c in correct_en.items() if c}
    c_x = {i for i, c in correct_x.items() if c}
    union = c_en | c_x
    return len(c_en & c_x) / len(union) if union else None
