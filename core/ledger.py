"""The cost ledger: what an arm consumed, in every unit the report compares."""
from __future__ import annotations

import resource
import sys
from dataclasses import asdict, dataclass
from typing import Optional

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
    train_mfu: Optional[float] = None         # model FLOPs / (device-seconds x peak); None when the peak is unknown
    train_stages: int = 0                     # training runs behind the weights (2: e.g. cpt then sft)

    def as_dict(self) -> dict:
        return asdict(self)

    def then(self, later: "Cost") -> "Cost":
        """The cost of weights trained by `later` starting from weights that cost `self`: additive units add up,
        peak memory is the larger, MFU is recomputed over both stages."""
        added = {k: getattr(self, k) + getattr(later, k) for k in
                 ("train_examples", "train_tokens", "train_flops", "train_wall_s", "train_device_s", "train_stages")}
        both = Cost(**added, train_peak_mem_mb=max(self.train_peak_mem_mb, later.train_peak_mem_mb))
        if self.train_mfu and later.train_mfu:   # peak = flops / (mfu x device-s), per stage
            peak_s = self.train_flops / self.train_mfu + later.train_flops / later.train_mfu
            both.train_mfu = both.train_flops / peak_s
        return both

    @classmethod
    def from_dict(cls, d: dict) -> "Cost":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


# Dense bf16/fp16 tensor-core peaks (TFLOP/s, no sparsity) by substring of torch.cuda.get_device_name();
# report.peak_tflops overrides, and a device not listed (CPUs) has no MFU unless it is given.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "GH200": 989.0, "A100": 312.0, "L40S": 362.0, "L40": 181.0,
               "A10G": 125.0, "A10": 125.0, "L4": 121.0, "V100": 125.0, "T4": 65.0, "MI300X": 1307.0}


def device_peak_flops(override_tflops: float | None = None) -> float | None:
    if override_tflops:
        return override_tflops * 1e12
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((t * 1e12 for key, t in PEAK_TFLOPS.items() if key in name), None)


def training_flops(n_params: int, tokens: int, trainable_params: int, layers: int = 0, width: int = 0,
                   mean_seq: float = 0.0) -> float:
    """Weights: 6·N·T for full training; with frozen weights (LoRA) no weight gradients are computed for them:
    forward 2·N·T + activation gradients 2·N·T + the adapters' own 6·N_lora·T.
    Attention scores and their use (QK^T, AV), forward and backward: 12·layers·width·mean_seq per token
    (PaLM's count, without halving for the causal mask)."""
    weights = 6.0 * n_params * tokens if trainable_params >= n_params \
        else 4.0 * n_params * tokens + 6.0 * trainable_params * tokens
    return weights + 12.0 * layers * width * mean_seq * tokens


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux
