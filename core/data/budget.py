"""Training-data budgets: the same seeded sample on every run, and a guard against train/test leakage."""
from __future__ import annotations

import math
import random
from typing import Sequence, TypeVar

from core.data.types import Pair
from core.errors import UserError

T = TypeVar("T")


def select(pairs: Sequence[T], n: int, seed: int, what: str) -> list[T]:
    """A seeded sample of exactly ``n`` items, kept in their original order.

    Samples positions, never hashes items, so PYTHONHASHSEED cannot change it. With the same seed and pool a
    smaller budget's sample lies inside a larger one's, so a budget sweep adds data rather than redrawing
    it."""
    if n <= 0:
        raise UserError(f"{what}: budget must be a positive number of examples, got {n}")
    if n > len(pairs):
        raise UserError(f"{what}: budget of {n} examples exceeds the {len(pairs)} available")
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    return [pairs[i] for i in sorted(order[:n])]


def check_disjoint(train: Sequence[Pair], test: Sequence[Pair]) -> None:
    """UserError if a pair id, a source sentence or a target sentence (whitespace-normalised) is in both train
    and test (or dev): a model that saw the reference in training is not tested on translating."""
    train_ids = {p.id for p in train}
    shared = [p.id for p in test if p.id in train_ids]
    if shared:
        raise UserError(f"train/test leakage: {len(shared)} test pair id(s) also in training, "
                        f"e.g. {shared[0]!r}")
    for side in ("src", "tgt"):
        seen = {" ".join(getattr(p, side).split()) for p in train}
        shared = [p for p in test if " ".join(getattr(p, side).split()) in seen]
        if shared:
            what = "source" if side == "src" else "target"
            raise UserError(f"train/test leakage: {len(shared)} test {what} sentence(s) also in training, "
                            f"e.g. {shared[0].id!r}: {getattr(shared[0], side)[:60]!r}")


def round_sizes(n: int, batch_size: int, world: int) -> list[list[int]]:
    """Per round (one micro-batch on every rank), each rank's batch size: full rounds first, the shortfall
    taken from the last rounds, every rank keeping at least one example per round."""
    if n < world or (batch_size == 1 and n % world):
        raise ValueError(f"{n} examples cannot be split over {world} ranks in equal numbers of non-empty "
                         f"batches of at most {batch_size}: use a batch size of 2 or more, or a multiple of "
                         f"{world} examples")
    batch_size = min(batch_size, math.ceil(n / world))   # larger batches would be cut to this anyway
    rounds = math.ceil(n / (batch_size * world))
    sizes = [[batch_size] * world for _ in range(rounds)]
    deficit = rounds * batch_size * world - n
    for step in reversed(sizes):
        while deficit and max(step) > 1:
            rank = max(range(world), key=lambda r: (step[r], r))   # the fullest rank gives one up
            step[rank] -= 1
            deficit -= 1
        if not deficit:
            break
    return sizes
