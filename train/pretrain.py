"""Continued (`cpt`, one language) and mixed multilingual (`mixed`) pretraining: next-token prediction on the
sequence `./launch.sh run` prepared in `data/pretrain-<arm>.jsonl`, exactly data.token_budget tokens long.

The HF Trainer under DeepSpeed, every token scored. Each sequence is one document's block (no packing, so no
cross-document attention); the Trainer's own count of non-padding tokens seen must end equal to the budget,
and the tokens of each language are counted from the batches as they are trained on.
"""
from __future__ import annotations

from pathlib import Path

import torch
from datasets import Dataset

from core.arms import PretrainArm
from core.config import ExperimentConfig
from core.io import read_jsonl
from core.ledger import Cost
from core.models import load_tokenizer
from train import trainer as common
from train.sampler import ExactlyOnceMixin


class Collator:
    """Right-padded batches; padding is masked out of attention and loss; `lang` rides along for the
    counts."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r["input_ids"])] = torch.tensor(r["input_ids"])
            mask[i, : len(r["input_ids"])] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100),
                "lang": torch.tensor([r["lang"] for r in rows])}


def projected_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """The positions a plain causal LM's head projects that are real work. transformers projects every
    position of the padded batch (logits_to_keep=0); the padding ones are an artefact of batching, not of the
    method, and would make the count depend on how sequences happen to be batched, so only the non-padding
    positions are counted (the last real one of each sequence included: its logits are computed, only the
    shifted loss ignores them). Liger's fused linear cross-entropy (use_liger_kernel) projects every position
    of the batch too, so the count is the same with it."""
    return attention_mask.bool()


def _trainer_class(ledger: common.Ledger, langs: list[str]):
    from transformers import Trainer

    class PretrainTrainer(ExactlyOnceMixin, Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            lang = inputs.pop("lang")
            if model.training:
                mask = inputs["attention_mask"]
                for i, n in zip(lang.tolist(), mask.sum(1).tolist()):
                    ledger.tokens_by_lang[langs[i]] += int(n)
                ledger.count(mask.sum(dim=1), projected_positions(mask))
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    return PretrainTrainer


def train(cfg: ExperimentConfig, arm: PretrainArm, model_path: str,
          out_dir: Path, data_file: Path) -> tuple[Cost, dict[str, int]]:
    """Returns the cost and the training tokens of each language, counted from the batches. `data_file`: the
    arm's token stream, one for every seed of it."""
    from transformers import TrainingArguments

    rows = read_jsonl(data_file)
    budget = sum(len(r["input_ids"]) for r in rows)
    dataset = Dataset.from_list([{"input_ids": r["input_ids"], "lang": arm.langs.index(r["lang"])}
                                 for r in rows])
    tokenizer = load_tokenizer(model_path, cfg.model.trust_remote_code)
    args = TrainingArguments(**common.common_args(cfg, arm, out_dir), num_train_epochs=1,
                             remove_unused_columns=False)  # keep `lang` for the collator
    model = common.load_model(cfg, model_path)
    ledger = common.Ledger(model, cfg, langs=arm.langs)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    trainer = _trainer_class(ledger, arm.langs)(model=model, args=args, train_dataset=dataset,
                                                 data_collator=Collator(pad), processing_class=tokenizer)
    ledger.attach(trainer)
    cost = common.run(trainer, ledger, tokenizer, out_dir, examples=0)
    if cost.train_tokens != budget or sum(ledger.tokens_by_lang.values()) != budget:
        raise RuntimeError(f"{arm.name}: trained on {cost.train_tokens} tokens ({ledger.tokens_by_lang}), "
                           f"the budget is {budget}")
    return cost, ledger.tokens_by_lang
