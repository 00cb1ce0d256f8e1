"""Supervised fine-tuning on the budget's prompt/completion pairs, full (`sft`) or with LoRA adapters (`lora`).

TRL's SFTTrainer under DeepSpeed; the loss covers the completion only (the translation, not the prompt).
Runs inside every rank started by `deepspeed train/run.py`; rank 0 saves and checks the checkpoint.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from datasets import Dataset

from core.config import ExperimentConfig, LoraArm, SftArm
from core.io import read_jsonl
from core.ledger import Cost, peak_memory_mb, training_flops
from core.models import count_parameters, load_tokenizer, torch_dtype


def _score_completion_positions_only() -> None:
    """TRL's fused LM head scores only the label positions on CUDA, but every position elsewhere (to keep tile
    shapes fixed for compilers). On CPU, nothing recompiles, and projecting prompt and padding positions onto a
    262k vocabulary is most of the step: score the completion tokens alone, as on CUDA."""
    import trl.trainer.utils as trl_utils

    gpu_rule = trl_utils._use_triton
    trl_utils._use_triton = lambda device: device.type == "cpu" or gpu_rule(device)


def lora_config(arm: LoraArm):
    from peft import LoraConfig

    return LoraConfig(r=arm.r, lora_alpha=arm.alpha, lora_dropout=arm.dropout, target_modules=arm.target_modules,
                      task_type="CAUSAL_LM")


def train(cfg: ExperimentConfig, arm: SftArm | LoraArm, run_dir: Path, model_path: str, out_dir: Path) -> Cost:
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    rows = read_jsonl(run_dir / "data" / "train.jsonl")
    dataset = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])
    tokenizer = load_tokenizer(model_path, cfg.model.trust_remote_code)
    use_gpu = torch.cuda.is_available()
    dtype = torch_dtype(cfg.model.dtype)
    args = SFTConfig(
        output_dir=str(out_dir / "trainer"),
        num_train_epochs=arm.epochs,
        learning_rate=arm.learning_rate,
        per_device_train_batch_size=arm.batch_size,
        gradient_accumulation_steps=arm.grad_accum,
        warmup_steps=arm.warmup_ratio,  # a float in [0, 1) is a share of all steps
        lr_scheduler_type="linear",
        logging_steps=arm.logging_steps,
        max_length=arm.max_length,
        completion_only_loss=True,
        packing=False,
        train_sampling_strategy="group_by_length",  # batches of similar length: a third less padding here
        seed=cfg.seed,
        data_seed=cfg.seed,
        deepspeed=json.loads(cfg.deepspeed.path().read_text()),
        use_cpu=not use_gpu,
        bf16=dtype == torch.bfloat16,
        save_strategy="no",
        report_to=["wandb"] if cfg.wandb.mode != "disabled" else [],
        run_name=arm.name,
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    import deepspeed

    _score_completion_positions_only()
    deepspeed.init_distributed()  # before loading: ZeRO-3 partitions the weights across ranks while they load
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype, trust_remote_code=cfg.model.trust_remote_code)
    n_params = count_parameters(model)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=lora_config(arm) if isinstance(arm, LoraArm) else None)
    trainable = count_parameters(trainer.model, trainable_only=True)

    start = time.time()
    trainer.train()
    wall = time.time() - start
    trainer.save_model(str(out_dir / "model"))  # gathers ZeRO-3 shards (stage3_gather_16bit_weights_on_model_save)
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(out_dir / "model"))

    tokens = int(trainer.state.num_input_tokens_seen)
    world = trainer.args.world_size
    cost = Cost(train_examples=len(rows), train_tokens=tokens,
                train_flops=training_flops(n_params, tokens, trainable),
                train_wall_s=wall, train_device_s=wall * world, train_peak_mem_mb=peak_memory_mb())
    if trainer.is_world_process_zero():
        _log_cost(cost, trainable, n_params)
    return cost


def _log_cost(cost: Cost, trainable: int, n_params: int) -> None:
    import wandb

    if wandb.run is not None:
        wandb.run.summary.update({f"cost/{k}": v for k, v in cost.as_dict().items()}
                                 | {"params/total": n_params, "params/trainable": trainable})
