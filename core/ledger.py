"""The cost ledger: what an arm consumed, in every unit the report compares."""
from __future__ import annotations

import resource
import sys
from dataclasses import asdict, dataclass
from typing import Optional

import torch


@dataclass
class Cost:
    # labelled examples the arm consumed (the budget), training-free arms included
    train_examples: int = 0
    train_tokens: int = 0         # non-padding tokens in the batches actually seen, all ranks
    train_flops: float = 0.0      # training_flops() of train_tokens and the two counters below
    # hardware FLOPs: train_flops + the forward recomputed under activation checkpointing (recomputed_flops);
    # None when unknown (also in a ledger written before it was counted)
    train_hw_flops: Optional[float] = 0.0
    train_wall_s: float = 0.0
    train_device_s: float = 0.0   # wall seconds x ranks
    # of train_wall_s: before the first step (DeepSpeed's engine, a resume's loading)
    train_setup_s: float = 0.0
    train_peak_mem_mb: float = 0.0
    eval_wall_s: float = 0.0
    extra_model_calls_per_item: float = 0.0   # prefills of another model (e.g. the SFT model giving a prior)
    extra_decode_steps_per_item: float = 0.0  # decode steps of another model
    # prompt tokens beyond the zero-shot prompt's (in-context demonstrations): prefill paid on every item
    extra_prompt_tokens_per_item: float = 0.0
    # model FLOPs / (device-seconds x peak); None when the peak is unknown
    train_mfu: Optional[float] = None
    train_stages: int = 0                     # training runs behind the weights (2: e.g. cpt then sft)
    lm_head_positions: int = 0    # non-padding positions the LM head projected in training, all ranks
    sum_seq_sq: int = 0           # Σ over trained sequences of (non-padding length)², all ranks
    # the peak MFU divides by (per device) and the width of the training dtype it is for (16: bf16/fp16,
    # 32: fp32); numbers, as every cost is; None when unknown or the stages differ
    mfu_peak_tflops: Optional[float] = None
    mfu_dtype_bits: Optional[int] = None

    def as_dict(self) -> dict:
        return asdict(self)

    def then(self, later: "Cost") -> "Cost":
        """The cost of weights trained by `later` starting from weights that cost `self`: additive units add
        up, peak memory is the larger, MFU is recomputed over both stages."""
        added = {k: getattr(self, k) + getattr(later, k) for k in
                 ("train_examples", "train_tokens", "train_flops", "train_wall_s", "train_device_s",
                  "train_setup_s", "train_stages", "lm_head_positions", "sum_seq_sq")}
        both = Cost(**added, train_peak_mem_mb=max(self.train_peak_mem_mb, later.train_peak_mem_mb))
        both.train_hw_flops = (None if self.train_hw_flops is None or later.train_hw_flops is None
                               else self.train_hw_flops + later.train_hw_flops)   # unknown stays unknown
        if self.train_mfu and later.train_mfu:   # peak = flops / (mfu x device-s), per stage
            peak_s = self.train_flops / self.train_mfu + later.train_flops / later.train_mfu
            both.train_mfu = both.train_flops / peak_s
            for key in ("mfu_peak_tflops", "mfu_dtype_bits"):
                setattr(both, key, getattr(self, key) if getattr(self, key) == getattr(later, key) else None)
        return both

    @classmethod
    def from_dict(cls, d: dict) -> "Cost":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "train_flops" in known and "train_hw_flops" not in known:   # written before it was counted
            known["train_hw_flops"] = None
        return cls(**known)


# Dense peaks (TFLOP/s, no sparsity) by the dtype the matmuls run in, then by substring of the GPU's name
# (a name inside another comes after it: GH200 before H200, L40S before L40, A10G before A10). bf16 and fp16
# share the tensor-core peak; fp32's is the non-tensor-core one: PyTorch runs fp32 matmuls without TF32 unless
# told to. report.peak_tflops overrides; a device not listed (CPUs) has no MFU unless it is given.
PEAK_TFLOPS = {
    "bf16": {"GH200": 989.0, "H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L40": 181.0,
             "A10G": 125.0, "A10": 125.0, "L4": 121.0, "V100": 125.0, "T4": 65.0, "MI300X": 1307.0},
    "fp32": {"GH200": 67.0, "H200": 67.0, "H100": 67.0, "A100": 19.5, "L40S": 91.6, "L40": 90.5,
             "A10G": 31.2, "A10": 31.2, "L4": 30.3, "V100": 15.7, "T4": 8.1, "MI300X": 163.4},
}
_PEAK_COLUMN = {torch.bfloat16: "bf16", torch.float16: "bf16", torch.float32: "fp32"}
DTYPE_BITS = {torch.bfloat16: 16, torch.float16: 16, torch.float32: 32}

# printed under the report's cost tables
FLOPS_CONVENTION = (
    "FLOPs count the matmuls computed in training, forward and backward: 6·N·T for the N non-embedding "
    "weights over the T non-padding tokens (LoRA: 4·N·T, no weight gradients for frozen weights, "
    "+ 6·N_lora·T); the LM head 6·V·d·P over the P non-padding positions it projects (4·V·d·P when frozen): "
    "every position for cpt/mixed, the completion positions only for sft/lora (TRL's fused head; with "
    "use_liger_kernel too: TRL keeps its head and turns Liger's fused cross-entropy off, which would project "
    "every position); none for the input embedding (a lookup; a tied head is charged by P alone); attention "
    "12·L·d·Σs² over the real sequence lengths s (PaLM's count, the causal mask not halved). These are model "
    "FLOPs: activation checkpointing's recomputed forward is not in them but in the hardware FLOPs beside "
    "them (train_hw_flops: + 2·N·T, + 2·N_lora·T under LoRA, + 4·L·d·Σs²; the head is not recomputed). "
    "MFU = model FLOPs / (device-seconds × the dense peak of the training dtype: bf16/fp16 tensor cores, "
    "fp32 without TF32): recomputation costs MFU its time, adds none of its FLOPs.")


def device_peak_flops(dtype: torch.dtype, override_tflops: float | None = None) -> float | None:
    """The device's dense peak FLOP/s for matmuls in `dtype` (the training dtype); `override_tflops` (the
    configured peak of the training device) wins. Unknown (None) for fp32 with TF32 switched on."""
    if override_tflops:
        return override_tflops * 1e12
    if not torch.cuda.is_available() or dtype not in _PEAK_COLUMN:
        return None
    if dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32:
        return None
    name = torch.cuda.get_device_name()
    return next((t * 1e12 for key, t in PEAK_TFLOPS[_PEAK_COLUMN[dtype]].items() if key in name), None)


def training_flops(body_params: int, head_params: int, tokens: int, head_positions: int, sum_seq_sq: int,
                   layers: int, width: int, lora_params: int = 0) -> float:
    """Training FLOPs (forward and backward) of what was computed; pure, so the report and tests can
    recompute it.

    body_params: N, the non-embedding weights: every parameter but the input embedding matrix and, when it
        is not tied to the embedding, the output head's matrix.
    head_params: the LM head's matrix, V·d (the embedding matrix itself when tied).
    tokens: T, non-padding tokens; head_positions: P, the non-padding positions the head projected.
    sum_seq_sq: Σ over sequences of s², s the non-padding length; layers, width: L and the query width d.
    lora_params: 0 for full fine-tuning; else the adapters' weights, every base weight (head too) frozen.

    A weight costs 2 FLOPs per position it multiplies forward, 2 for the activation gradient and 2 for its
    own gradient, none when frozen. The embedding lookup multiplies nothing. Attention's QK^T and AV:
    4·d·s per token and layer forward, ×3 with backward, over the full s (PaLM's count)."""
    per_weight = 4.0 if lora_params else 6.0
    body = per_weight * body_params * tokens + 6.0 * lora_params * tokens
    head = per_weight * head_params * head_positions
    return body + head + 12.0 * layers * width * sum_seq_sq


def recomputed_flops(body_params: int, tokens: int, sum_seq_sq: int, layers: int, width: int,
                     lora_params: int = 0) -> float:
    """What activation checkpointing adds to training_flops: each decoder layer's forward run again in the
    backward pass, 2 FLOPs per body weight (frozen or not, adapters included) and token and attention's
    forward 4·L·d·Σs²; the LM head is outside the checkpointed layers and is not recomputed. Hardware FLOPs
    = training_flops + this."""
    return 2.0 * (body_params + lora_params) * tokens + 4.0 * layers * width * sum_seq_sq


def batch_counts(lengths: torch.Tensor, projected: torch.Tensor) -> dict[str, int]:
    """What one training batch computed, for training_flops: `tokens` (the sum of the examples' non-padding
    `lengths`), `lm_head_positions` (the true ones in `projected`, which marks non-padding positions the head
    projects) and `sum_seq_sq` (Σ over examples of length²: attention stays within an example, also when a
    padding-free batch concatenates them)."""
    lengths = lengths.long()
    # one device-to-host copy per batch, not three
    counts = torch.stack([lengths.sum(), projected.sum().long(), (lengths * lengths).sum()]).tolist()
    return dict(zip(("tokens", "lm_head_positions", "sum_seq_sq"), counts))


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux
