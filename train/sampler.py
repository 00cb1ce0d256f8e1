"""Every training example exactly once per epoch, on any number of ranks (fairness rule 1).

accelerate evens out the ranks' batches by repeating examples from the start of the epoch (37 sequences, batch
4, 2 ranks -> 40): an arm then trains on, and is charged for, examples beyond its budget, and a pretraining
arm misses its exact token budget. Here every rank gets the same number of micro-batches, so DeepSpeed's
collectives stay in step, and the last ones are smaller instead: the remainder is spread over the ranks, each
keeping at least one.
"""
from __future__ import annotations

import random

from transformers import TrainerCallback
from transformers.trainer_pt_utils import BatchRebalanceSampler

from core.data.budget import round_sizes

MEGABATCH = 50   # rounds whose examples are sorted by length together (as transformers' LengthGroupedSampler)


class ExactlyOnce(BatchRebalanceSampler):
    """This rank's micro-batches of one epoch. The Trainer hands a BatchRebalanceSampler (its rank-aware batch
    sampler) to the DataLoader as is, without accelerate's re-sharding: that type is all that is borrowed."""

    def __init__(self, lengths: list[int], batch_size: int, world: int, rank: int, seed: int,
                 group_by_length: bool):
        self.lengths, self.world, self.rank, self.seed, self.group = (list(lengths), world, rank, seed,
                                                                      group_by_length)
        self.sizes = round_sizes(len(self.lengths), batch_size, world)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.sizes)

    def order(self) -> list[int]:
        """The epoch's global order: a seeded shuffle; grouped by length, each megabatch longest first, so the
        examples of one round have similar lengths (less padding)."""
        order = list(range(len(self.lengths)))
        random.Random(self.seed + self.epoch).shuffle(order)
        if not self.group:
            return order
        size = MEGABATCH * sum(self.sizes[0])
        return [i for start in range(0, len(order), size)
                for i in sorted(order[start:start + size], key=lambda i: -self.lengths[i])]

    def __iter__(self):
        order, position = self.order(), 0
        for sizes in self.sizes:
            start = position + sum(sizes[:self.rank])
            yield order[start:start + sizes[self.rank]]
            position += sum(sizes)


class _EpochSync(TrainerCallback):
    """Sets the sampler's epoch from the Trainer's state at each epoch's start: on a resume the Trainer wraps
    the dataloader to skip the batches already trained, and its own set_epoch no longer reaches the sampler,
    which would then serve epoch 0's order for the rest of a later epoch (repeats and drops)."""

    def __init__(self, sampler: ExactlyOnce):
        self.sampler = sampler

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.sampler.set_epoch(int(state.epoch + 1e-6))


class ExactlyOnceMixin:
    """For a transformers Trainer subclass: train on ExactlyOnce batches. `group_by_length` on the class."""

    group_by_length = False

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        lengths = [len(ids) for ids in dataset["input_ids"]]
        sampler = ExactlyOnce(lengths, self.args.per_device_train_batch_size, self.args.world_size,
                              self.args.process_index, self.args.seed, self.group_by_length)
        self.add_callback(_EpochSync(sampler))
        return sampler
