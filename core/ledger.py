"""The cost ledger: what an arm consumed, in every unit the report compares."""
from __future__ import annotations

import resource
import sys
from dataclasses import asdict, dataclass

import torch


@dataclass
class Cost:
    train_examples: int = 0       # labelled examples the arm consumed (the budget), training-free arms included
    train_tokens: int = 0         # non-padding tokens in the batches actually seen, all ranks
    train_flops: float = 0.0
    train_wall_s: float = 0.0
    train_device_s: float = 0.0   # wall seconds x ranks
    train_peak_mem_mb: float = 0.0
    eval_wall_s: float = 0.0
    extra_model_calls_per_item: float = 0.0   # prefills of another model (e.g. the SFT model giving a prior)
    extra_decode_steps_per_item: float = 0.0  # decode steps of another model

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Cost":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def training_flops(n_params: int, tokens: int, trainable_params: int) -> float:
    """6·N·T for full training. With frozen weights (LoRA) no weight gradients are computed for them:
    forward 2·N·T + activation gradients 2·N·T + the adapters' own 6·N_lora·T."""
    if trainable_params >= n_params:
        return 6.0 * n_params * tokens
    return 4.0 * n_params * tokens + 6.0 * trainable_params * tokens


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux
