"""What every training recipe shares: HF Trainer arguments, resuming from the last complete checkpoint, the
live throughput log (tokens/s, MFU) and the cost ledger.

A checkpoint directory is complete only once each rank has written its `yarn-rank<r>.json` into it, after the
Trainer finished saving it; a process killed mid-save leaves a directory without them, which resuming skips.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from core.config import ExperimentConfig
from core.checkpoints import file_hashes
from core.faults import fault_point
from core.io import atomic_write_json
from core.ledger import (DTYPE_BITS, Cost, batch_counts, device_peak_flops, peak_memory_mb,
                         recomputed_flops, training_flops)
from core.models import attn_implementation, count_parameters, torch_dtype
from core.provenance import attention_of

MARKER = "yarn-rank{rank}.json"
# the attention implementation of the model this process trains (its Ledger's): train/run.py stamps it into
# train.json
used_attention: str | None = None


def common_args(cfg: ExperimentConfig, arm, out_dir: Path) -> dict:
    """Keyword arguments shared by TrainingArguments (cpt, mixed) and TRL's SFTConfig (sft, lora)."""
    dtype = torch_dtype(cfg.model.dtype)
    return dict(
        output_dir=str(out_dir / "trainer"),
        learning_rate=arm.learning_rate,
        per_device_train_batch_size=arm.batch_size,
        gradient_accumulation_steps=arm.grad_accum,
        warmup_steps=arm.warmup_ratio,  # a float in [0, 1) is a share of all steps
        lr_scheduler_type="linear",
        logging_steps=arm.logging_steps,
        # the arm's training seed (`seeds:` gives each copy its own): new weights, data order
        # (train/sampler.py)
        seed=cfg.seed if arm.seed is None else arm.seed,
        deepspeed=json.loads(cfg.deepspeed.path().read_text()),
        # explicit: TRL's SFTConfig would switch it on by default, TrainingArguments off
        gradient_checkpointing=bool(arm.activation_checkpointing),
        # prepare refused it without the package or a GPU (core/prepare.py)
        use_liger_kernel=bool(getattr(arm, "use_liger_kernel", None)),
        use_cpu=not torch.cuda.is_available(),
        bf16=dtype == torch.bfloat16,
        # two kept: the Trainer deletes old checkpoints before the new one is marked complete
        save_strategy="steps" if arm.save_steps else "no",
        **({"save_steps": arm.save_steps, "save_total_limit": 2} if arm.save_steps else {}),
        report_to=["wandb"] if cfg.wandb.mode != "disabled" else [],
        run_name=arm.name,
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0,
        disable_tqdm=False,
    )


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def last_complete_checkpoint(out_dir: Path) -> Path | None:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    done = [d for d in (out_dir / "trainer").glob("checkpoint-*")
            if d.name.split("-")[-1].isdigit()
            and all((d / MARKER.format(rank=r)).is_file() for r in range(world))]
    return max(done, key=lambda d: int(d.name.split("-")[-1]), default=None)


class Ledger(TrainerCallback):
    """Counts what each training batch computed (tokens, LM-head positions, Σs²: see
    core.ledger.training_flops), logs tokens/s and MFU with the Trainer's own logs (so to W&B live) and marks
    saved checkpoints complete, with this rank's counts and the training time so far (restored on resume)."""

    def __init__(self, model, cfg: ExperimentConfig, langs: list[str] = ()):
        """`model`: the model before any adapters are added."""
        self.body_params, self.head_params = weight_split(model)
        self.n_params, self.trainable = count_parameters(model), 0
        self.layers, self.width = attention_shape(model)
        global used_attention
        used_attention = attention_of(model)
        self.dtype = torch_dtype(cfg.model.dtype)
        self.peak = device_peak_flops(self.dtype, cfg.report.peak_tflops)
        # this rank's, from the batches while training; the same keys on every rank, for the all-reduce
        self.counts = dict.fromkeys(("tokens", "lm_head_positions", "sum_seq_sq"), 0)
        # counted by a recipe that knows each sequence's language
        self.tokens_by_lang: dict[str, int] = dict.fromkeys(langs, 0)
        # training time of the processes before a resume, up to their last checkpoint
        self.earlier_wall_s = 0.0
        self._t0 = self._tokens0 = self._counts0 = None   # at the first step: after DeepSpeed's engine setup

    def attach(self, trainer) -> None:
        self.trainable = count_parameters(trainer.model, trainable_only=True)
        trainer.add_callback(self)

    def count(self, lengths: torch.Tensor, projected: torch.Tensor) -> None:
        """One training batch: each example's non-padding length; `projected` marks the non-padding positions
        the LM head projects."""
        for key, n in batch_counts(lengths, projected).items():
            self.counts[key] += n

    def restore(self, checkpoint: Path) -> None:
        saved = json.loads((checkpoint / MARKER.format(rank=rank())).read_text())
        if "flops_counts" not in saved:
            raise RuntimeError(f"{checkpoint} predates the FLOPs counters, so resuming would undercount "
                               f"them: delete {checkpoint.parent} to train from the start")
        self.tokens_by_lang.update(saved["tokens_by_lang"])
        self.counts.update(saved["flops_counts"])
        self.earlier_wall_s = saved["train_wall_s"]

    def on_train_begin(self, args, state, control, **kwargs):
        self._t0, self._tokens0, self._counts0 = time.time(), state.num_input_tokens_seen, dict(self.counts)

    @property
    def lora_params(self) -> int:
        return self.trainable if self.trainable < self.n_params else 0   # fewer: adapters on a frozen base

    def flops(self, counts: dict[str, int]) -> float:
        """Model FLOPs (core.ledger.training_flops): what MFU divides."""
        return training_flops(self.body_params, self.head_params, counts["tokens"],
                              counts["lm_head_positions"], counts["sum_seq_sq"], self.layers, self.width,
                              lora_params=self.lora_params)

    def hw_flops(self, counts: dict[str, int], recompute: bool) -> float:
        """Hardware FLOPs: the model FLOPs and, under activation checkpointing (`recompute`), the forward of
        the body run again in the backward pass (core.ledger.recomputed_flops)."""
        again = recomputed_flops(self.body_params, counts["tokens"], counts["sum_seq_sq"], self.layers,
                                 self.width, self.lora_params) if recompute else 0.0
        return self.flops(counts) + again

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or self._t0 is None or "loss" not in logs:
            return
        wall = time.time() - self._t0
        tokens = state.num_input_tokens_seen - self._tokens0
        logs["throughput/tokens_per_s"] = tokens / max(wall, 1e-9)
        if self.peak:   # this rank's (its counts are summed over ranks only at the end)
            since = {k: n - self._counts0[k] for k, n in self.counts.items()}
            logs["throughput/mfu"] = self.flops(since) / (max(wall, 1e-9) * self.peak)
        for lang, n in self.tokens_by_lang.items():
            logs[f"tokens/{lang}"] = n  # this rank's
        if state.is_world_process_zero:
            # a local copy of what W&B gets; a resumed run appends, and its lines win for repeated steps
            with open(Path(args.output_dir).parent / "log.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps({"step": state.global_step, **logs}) + "\n")

    def on_save(self, args, state, control, **kwargs):
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        _barrier()   # every rank's files are on disk before any of them is hashed
        atomic_write_json(checkpoint / MARKER.format(rank=rank()),
                          {"step": state.global_step, "num_input_tokens_seen": state.num_input_tokens_seen,
                           "tokens_by_lang": self.tokens_by_lang, "flops_counts": self.counts,
                           "train_wall_s": self.earlier_wall_s + time.time() - self._t0,
                           "world": args.world_size,
                           "files": file_hashes(checkpoint, rank(), args.world_size)})
        _barrier()
        fault_point("checkpoint-saved", checkpoint.name)


def _barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def run(trainer, ledger: Ledger, tokenizer, out_dir: Path, examples: int) -> Cost:
    """Train (resuming when a complete checkpoint exists), save model and tokenizer, and return the cost.
    Token counts by language and the FLOPs counters are summed over ranks on the way."""
    resume = last_complete_checkpoint(out_dir)
    if resume is not None:
        ledger.restore(resume)
        print(f"[train] resuming from {resume}", flush=True)
    start = time.time()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    # the work a killed process did after its last checkpoint is redone here, and counted once
    wall = ledger.earlier_wall_s + time.time() - start
    setup = (ledger._t0 or start) - start   # DeepSpeed's engine and optimizer, a resumed checkpoint's loading
    # gathers ZeRO-3 shards (stage3_gather_16bit_weights_on_model_save)
    trainer.save_model(str(out_dir / "model"))
    ledger.tokens_by_lang = _sum_over_ranks(ledger.tokens_by_lang)
    counts = _sum_over_ranks(ledger.counts)
    tokens = int(trainer.state.num_input_tokens_seen)
    if counts["tokens"] != tokens:   # a batch trained on but not counted (or twice) would misprice FLOPs
        raise RuntimeError(f"the FLOPs counters saw {counts['tokens']} tokens, the Trainer {tokens}")
    world = trainer.args.world_size
    flops = ledger.flops(counts)
    # transformers 5 names it activation_checkpointing (gradient_checkpointing: its deprecated mirror)
    recompute = bool(getattr(trainer.args, "activation_checkpointing", trainer.args.gradient_checkpointing))
    cost = Cost(train_examples=examples, train_tokens=tokens, train_flops=flops,
                train_hw_flops=ledger.hw_flops(counts, recompute), train_wall_s=wall,
                train_device_s=wall * world, train_setup_s=setup, train_peak_mem_mb=peak_memory_mb(),
                train_stages=1,
                lm_head_positions=counts["lm_head_positions"], sum_seq_sq=counts["sum_seq_sq"],
                train_mfu=flops / (wall * world * ledger.peak) if ledger.peak else None,
                mfu_peak_tflops=ledger.peak / 1e12 if ledger.peak else None,
                mfu_dtype_bits=DTYPE_BITS.get(ledger.dtype) if ledger.peak else None)
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(out_dir / "model"))
        _log_summary(cost, ledger)
    return cost


def load_model(cfg: ExperimentConfig, model_path: str):
    """The starting weights, loaded in every rank after DeepSpeed's process group exists (ZeRO-3 partitions
    the weights across ranks while they load), with the configured attention implementation."""
    import deepspeed
    from transformers import AutoModelForCausalLM

    deepspeed.init_distributed()
    return AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype(cfg.model.dtype),
                                                trust_remote_code=cfg.model.trust_remote_code,
                                                attn_implementation=attn_implementation(cfg.model.attention))


def attention_shape(model) -> tuple[int, int]:
    """(layers, query width) for the attention term of the FLOPs count."""
    c = getattr(model, "config", None)
    c = getattr(c, "text_config", None) or c
    heads_dim = getattr(c, "head_dim", None) or (c.hidden_size // c.num_attention_heads)
    return c.num_hidden_layers, c.num_attention_heads * heads_dim


def weight_split(model) -> tuple[int, int]:
    """(non-embedding weights N, LM head weights V·d) for the FLOPs count, also under ZeRO-3 (`ds_numel`).
    The input embedding is a lookup, not a matmul; the head is charged per projected position, so an untied
    head is left out of N as well, and a tied one is the embedding matrix itself."""
    size = lambda p: getattr(p, "ds_numel", p.numel())  # noqa: E731
    embedding, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    matrices = {id(embedding), id(head)}   # one id when tied
    return sum(size(p) for p in model.parameters() if id(p) not in matrices), size(head)


def _sum_over_ranks(counts: dict[str, int]) -> dict[str, int]:
    import torch.distributed as dist

    values = torch.tensor(list(counts.values()), dtype=torch.int64)
    if counts and dist.is_available() and dist.is_initialized():
        # NCCL reduces CUDA tensors only: on this rank's device (set by the Trainer)
        if dist.get_backend() == "nccl":
            values = values.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(values)
    return dict(zip(counts, map(int, values.tolist())))


def _log_summary(cost: Cost, ledger: Ledger) -> None:
    from core.tracking import active_run

    if (run := active_run()) is not None:
        run.summary.update({f"cost/{k}": v for k, v in cost.as_dict().items() if v is not None}
                           | {"params/total": ledger.n_params, "params/trainable": ledger.trainable,
                              "params/non_embedding": ledger.body_params,
                              "params/lm_head": ledger.head_params}
                           | {f"tokens/{lang}": n for lang, n in ledger.tokens_by_lang.items()})
