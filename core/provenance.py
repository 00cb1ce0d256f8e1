"""What a result or a checkpoint was computed by, beyond its config: the protocol version of this code's way
of computing results, the packages that computed them, the resolved dtype and the attention implementation
the model ran.

A code fix changes neither the config hash nor the weights, so without a protocol version an "after" run in
the same folder would keep the "before" records and checkpoints. Bump PROTOCOL with every change of how
results, costs or checkpoints are computed: anything written under another version is recomputed, with a
message.
"""
from __future__ import annotations

from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version

import torch

# 1: every record and train.json written before protocols existed (no "protocol" key).
# 2: exact budgets on any number of ranks, token budget from SFT's epochs, FLOPs by computed work and MFU by
#    the training dtype's peak, timing without loading or warm-up, unknown costs, k counted over
#    text-carrying pieces and inside max_new_tokens.
# 3: dev splits; Bible test books' parallels (Matthew, Luke) and a dev book (Esther) out of training, targets
#    checked for overlap, pretraining text decontaminated; POS tagged as word/TAG pairs; chance-normalised RA,
#    option scores after the options' common prefix, ambiguous x_csqa and fictional items dropped; off-target
#    undecided for very short outputs; data files hashed into train.json and records.
PROTOCOL = 3
PACKAGES = ("torch", "transformers", "trl", "peft", "deepspeed", "accelerate", "sacrebleu")


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def torch_dtype(name: str) -> torch.dtype:
    """A configured dtype as torch's; "auto": bf16 where the GPU has it, else float32."""
    if name == "auto":
        return (torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported()
                else torch.float32)
    return getattr(torch, name)


def attention_of(model) -> str | None:
    """The attention implementation a loaded model runs (transformers resolves `auto` while loading: sdpa,
    eager, flash_attention_2, ...); None when unknown."""
    return getattr(getattr(model, "config", None), "_attn_implementation", None)


def stamp(dtype: str, model=None, attention: str | None = None) -> dict:
    """The keys every record and train.json carries; `dtype` as configured ("auto" is resolved here), and the
    attention implementation actually used: that of `model`, or `attention` as read from it earlier."""
    return {"protocol": PROTOCOL, "versions": package_versions(),
            "dtype": str(torch_dtype(dtype)).removeprefix("torch."),
            "attention": attention_of(model) if model is not None else attention}


def protocol_of(written) -> int:
    """The protocol of a record: a dict as read from JSON, or a typed record (core/records.py)."""
    return int((written.get("protocol") if isinstance(written, dict) else written.protocol) or 1)


def is_current(written: dict) -> bool:
    return protocol_of(written) == PROTOCOL
