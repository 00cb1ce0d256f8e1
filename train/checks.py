"""Checks on a saved checkpoint, run right after saving: the failures users of other frameworks find weeks
later (ZeRO-3 saving no weights, an empty LoRA adapter, an adapter that changes nothing) stop the run here."""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file


class CheckpointError(RuntimeError):
    pass


def check_full(model_dir: Path, base_path: str) -> dict:
    """The checkpoint reloads from safetensors, has every base parameter, and training changed it."""
    from transformers import AutoModelForCausalLM

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{model_dir}: no safetensors weights were saved")
    tuned = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    tuned_sd, base_sd = tuned.state_dict(), base.state_dict()
    if tuned_sd.keys() != base_sd.keys():
        raise CheckpointError(f"{model_dir}: parameters differ from the base model's")
    changed = sum(not torch.equal(tuned_sd[k], base_sd[k]) for k in base_sd)
    if changed == 0:
        raise CheckpointError(f"{model_dir}: weights are identical to the base model "
                              "(nothing was trained or saved)")
    return {"kind": "full", "tensors": len(base_sd), "tensors_changed": changed}


def check_adapter(adapter_dir: Path, base_path: str) -> dict:
    """The adapter file holds LoRA tensors, lora_B moved away from its zero init, and it loads onto the
    base."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    path = adapter_dir / "adapter_model.safetensors"
    if not path.is_file():
        raise CheckpointError(f"{adapter_dir}: no adapter_model.safetensors was saved")
    tensors = load_file(str(path))
    lora_b = [t for k, t in tensors.items() if "lora_B" in k]
    if not tensors or not lora_b or any(t.numel() == 0 for t in tensors.values()):
        raise CheckpointError(f"{path}: adapter is empty ({path.stat().st_size} bytes) "
                              "- the ZeRO-3 empty-adapter bug?")
    if all(torch.count_nonzero(t) == 0 for t in lora_b):
        raise CheckpointError(f"{path}: every lora_B is still zero: the adapter changes nothing")
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    PeftModel.from_pretrained(base, str(adapter_dir))
    return {"kind": "lora", "tensors": len(tensors), "bytes": path.stat().st_size}
