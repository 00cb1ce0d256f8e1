"""Supervised fine-tuning on the budget's prompt/completion pairs, full (`sft`) or with LoRA adapters
(`lora`).

TRL's SFTTrainer under DeepSpeed; the loss covers the completion only (the translation, not the prompt).
Runs inside every rank started by `deepspeed train/run.py`; rank 0 saves and checks the checkpoint.
"""
from __future__ import annotations

from pathlib import Path

import torch
from datasets import Dataset

from core.arms import LoraArm, SftArm
from core.config import ExperimentConfig
from core.io import read_jsonl
from core.ledger import Cost
from core.models import load_tokenizer
from train import trainer as common
from train.sampler import ExactlyOnceMixin


def _score_completion_positions_only() -> None:
    """TRL's fused LM head scores only the label positions on CUDA, but every position elsewhere (to keep tile
    shapes fixed for compilers). On CPU, nothing recompiles, and projecting prompt and padding positions onto
    a 262k vocabulary is most of the step: score the completion tokens alone, as on CUDA."""
    import trl.trainer.utils as trl_utils

    gpu_rule = trl_utils._use_triton
    trl_utils._use_triton = lambda device: device.type == "cpu" or gpu_rule(device)


def sequence_lengths(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Each example's non-padding length: from the attention mask of a padded batch, or from the sequence
    boundaries TRL's padding-free collator gives with its single row of concatenated examples."""
    if "attention_mask" in inputs:
        return inputs["attention_mask"].sum(dim=1)
    return inputs["cu_seq_lens_q"].diff()


def projected_positions(inputs: dict[str, torch.Tensor], liger_fused_ce: bool = False) -> torch.Tensor:
    """The positions TRL's fused LM head (trl.trainer.utils.add_fused_lm_head) projects onto the vocabulary:
    it drops the last position and shifts the labels left, then, when `compact` (`_use_triton` of the device:
    CUDA with Triton, and CPU by _score_completion_positions_only), projects only the positions whose next
    label is not -100, i.e. one per completion token; otherwise it projects every position, of which the
    non-padding ones are counted (padding is batching's artefact, as for pretraining).

    `liger_fused_ce` (see liger_fused_ce()): Liger's fused linear cross-entropy computes the loss instead
    (liger_kernel's LigerForCausalLMLoss pads the labels by one and projects the hidden state of every
    position of the batch, -100 labels included): the non-padding positions, all of them."""
    import trl.trainer.utils as trl_utils

    if liger_fused_ce:
        if "attention_mask" not in inputs:   # padding-free: one row, no padding
            return torch.ones_like(inputs["labels"], dtype=torch.bool)
        return inputs["attention_mask"].bool()
    if trl_utils._use_triton(inputs["labels"].device):
        return inputs["labels"][:, 1:] != -100
    if "attention_mask" not in inputs:   # padding-free: one row, no padding
        return torch.ones_like(inputs["labels"][:, 1:], dtype=torch.bool)
    return inputs["attention_mask"][:, :-1].bool()


def liger_fused_ce(args) -> bool:
    """Whether Liger's fused linear cross-entropy replaces the model's forward in training: with
    use_liger_kernel, unless its kernel config turns it off. TRL's SFTTrainer (1.16) turns it off when it is
    built (args.liger_kernel_config["fused_linear_cross_entropy"] = False: it would drop TRL's fused head), so
    read it from the trainer's args after that, not from the config."""
    config = getattr(args, "liger_kernel_config", None) or {}
    return bool(getattr(args, "use_liger_kernel", False)) and bool(config.get("fused_linear_cross_entropy",
                                                                                True))


def tokens_seen(padding_free: bool) -> str:
    """How the Trainer counts the tokens it trained on (the ledger checks its own count against it): without
    padding, every token counts, also an EOS that is the pad token as well (Llama-3, Qwen2.5), which
    "non_padding" would drop."""
    return "all" if padding_free else "non_padding"


def lora_config(arm: LoraArm):
    from peft import LoraConfig

    return LoraConfig(r=arm.r, lora_alpha=arm.alpha, lora_dropout=arm.dropout,
                      target_modules=arm.target_modules, task_type="CAUSAL_LM")


def _trainer_class(ledger: common.Ledger, padding_free: bool):
    """TRL's SFTTrainer on exactly-once batches (train/sampler.py), counting each batch's work into the
    ledger."""
    from trl import SFTTrainer

    class Trainer(ExactlyOnceMixin, SFTTrainer):
        # padded batches of similar length: a third less padding here; a padding-free batch has none to save
        group_by_length = not padding_free

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if model.training:
                ledger.count(sequence_lengths(inputs), projected_positions(inputs, liger_fused_ce(self.args)))
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    return Trainer


def train(cfg: ExperimentConfig, arm: SftArm | LoraArm, model_path: str,
          out_dir: Path, data_file: Path) -> tuple[Cost, dict[str, int]]:
    """Returns the cost and (as every recipe) tokens by language: the prompts mix languages, so none here.
    `data_file`: the budget's pairs, or a conductivity probe's fictional facts."""
    from trl import SFTConfig

    rows = read_jsonl(data_file)
    dataset = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])
    tokenizer = load_tokenizer(model_path, cfg.model.trust_remote_code)
    padding_free = bool(arm.padding_free)
    args = SFTConfig(
        **common.common_args(cfg, arm, out_dir)
        | {"include_num_input_tokens_seen": tokens_seen(padding_free)},
        num_train_epochs=arm.epochs,
        # prepare refused examples over max_length; TRL enforces none in padding-free batches
        max_length=None if padding_free else arm.max_length,
        completion_only_loss=True,
        packing=False,
        padding_free=padding_free,
    )
    _score_completion_positions_only()
    model = common.load_model(cfg, model_path)
    if padding_free and not (model.config._attn_implementation or "").startswith("flash"):
        print(f"[{arm.name}] padding_free under {model.config._attn_implementation} attention (set "
              "model.attention: flash_attention_2 on a GPU): transformers "
              "builds a dense block-diagonal mask over the whole row, slower than padded batches, and the "
              "ledger's Σs² (attention within each example) undercounts what is computed; a flash-attention "
              "kernel computes what it counts", flush=True)
    ledger = common.Ledger(model, cfg)
    trainer = _trainer_class(ledger, padding_free)(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
        peft_config=lora_config(arm) if isinstance(arm, LoraArm) else None)
    ledger.attach(trainer)
    return common.run(trainer, ledger, tokenizer, out_dir, examples=len(rows)), {}
