"""The pieces every config model is built from: strict models, names, seeds, languages and the training
arguments a training job takes. Task, arm and prior modules import these, never core.config (which imports
them back to assemble the experiment)."""
from __future__ import annotations

import re
from typing import Annotated, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo

from core.errors import UserError
from core.languages import language


class Strict(BaseModel):
    # inf and nan are never a sensible epoch count, rate or price (.inf epochs overflowed deep in training)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def new_field(default, **kwargs) -> FieldInfo:
    """A field added after configs were hashed: at its default it is left out of the config hash
    (`without_new_defaults`), so existing runs keep theirs; any other value is hashed."""
    return Field(default, json_schema_extra={"unhashed_default": True}, **kwargs)


def without_new_defaults(model: BaseModel, dumped: dict) -> dict:
    """`dumped` (model's model_dump) without the new_field()s that hold their default, in nested models and
    lists of them too."""
    for name, field in type(model).model_fields.items():
        if name not in dumped:
            continue
        value, extra = getattr(model, name), field.json_schema_extra
        if isinstance(extra, dict) and extra.get("unhashed_default") and value == field.default:
            del dumped[name]
        elif isinstance(value, BaseModel) and isinstance(dumped[name], dict):
            without_new_defaults(value, dumped[name])
        elif isinstance(value, list) and isinstance(dumped[name], list):
            for item, item_dumped in zip(value, dumped[name]):
                if isinstance(item, BaseModel) and isinstance(item_dumped, dict):
                    without_new_defaults(item, item_dumped)
    return dumped


Seed = Annotated[int, Field(ge=0, lt=2**32, description="what numpy accepts")]


def check_name(name: str, what: str = "") -> str:
    """Experiment, sweep and arm names become directory names, W&B ids and override keys (`arms.<name>.key`):
    no dots or slashes, no leading digit (`arms.1.key` is the index form)."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,63}", name):
        raise ValueError(f"{what}{name!r} is not a valid name: a letter, then letters, digits, _ or - "
                         "(at most 64 characters)")
    return name


Name = Annotated[str, AfterValidator(check_name)]


def check_language(code: str) -> str:
    try:
        return language(code).code
    except UserError as e:
        raise ValueError(str(e)) from None


def check_direction(d: str) -> str:
    parts = d.split("-")
    if len(parts) != 2 or parts[0] == parts[1]:
        raise ValueError(f"direction {d!r} must look like 'en-de'")
    for code in parts:
        check_language(code)
    return d


class TrainArgs(Strict):
    epochs: float = Field(1.0, gt=0)
    learning_rate: float = Field(2e-5, gt=0)
    batch_size: int = Field(8, gt=0, description="per device")
    grad_accum: int = Field(1, gt=0)
    max_length: int = Field(256, gt=8,
                            description="examples longer than this are rejected, never silently cut")
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    logging_steps: int = Field(5, gt=0)
    save_steps: Optional[int] = Field(
        None, gt=0, description="checkpoint every N optimizer steps; a killed run started again resumes "
        "from the last complete one (default: final model only)")
    init_from: Optional[str] = Field(
        None, description="start from this earlier arm's checkpoint instead of the base model (two-stage, "
        "e.g. cpt then sft); the ledger adds both stages' costs")
    seed: Optional[Seed] = Field(
        None, description="training seed (initialisation of new weights, data order, dropout); default: the "
        "experiment's seed. `seeds:` of the experiment sets it per copy")
    activation_checkpointing: Optional[bool] = Field(
        None, description="recompute activations in the backward pass: less memory, about a third more "
        "compute (in the ledger's hardware FLOPs, train_hw_flops; not in MFU, which counts the model's "
        "FLOPs); default: off")
    use_liger_kernel: bool = new_field(
        False, description="Liger's Triton kernels (RMSNorm, RoPE, SwiGLU; for cpt/mixed also its fused "
        "linear cross-entropy; TRL keeps its own fused LM head for sft/lora): needs the liger-kernel package "
        "and a CUDA GPU")
