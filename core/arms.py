"""Arm kinds: each is a config model with a `method` tag, registered here, so the config's arm union, the
training jobs and the reports derive from one list. A training arm names its trainer ("module:function",
imported only in the training process); a plugin registers more arms with `@register_arm`."""
from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from align.priors import PRIORS, PriorSource
from core.data.mono import BibleText, MonoSource
from core.schema import Name, Strict, TrainArgs, check_language, check_name

ARMS: dict[str, type[Strict]] = {}


def register_arm(cls: type[Strict]) -> type[Strict]:
    """Registers each `method` value the class's tag accepts."""
    for method in cls.model_fields["method"].annotation.__args__:
        if method in ARMS and ARMS[method] is not cls:
            raise ValueError(f"arm method {method!r} is registered twice")
        ARMS[method] = cls
    return cls


def trained(method: str) -> bool:
    """Whether an arm of this method trains a checkpoint (a training job)."""
    return getattr(ARMS[method], "trained", False)


def full_weights(method: str) -> bool:
    """Whether its checkpoint is a whole model another arm can start from (init_from, conductivity)."""
    return getattr(ARMS[method], "full_weights", False)


def arm_union():
    """The `arms:` item type: every registered arm, told apart by `method`."""
    members = tuple(dict.fromkeys(ARMS.values()))
    return Annotated[Union[members], Field(discriminator="method")]   # type: ignore[valid-type]


@register_arm
class BaseArm(Strict):
    """A model evaluated as it is: the experiment's base model, or `model`: any other model or checkpoint
    (e.g. another run's `checkpoints/sft/model`, whose `train.json` then supplies its training cost)."""
    method: Literal["base"]
    name: Name = "base"
    trained: ClassVar[bool] = False
    model: Optional[str] = None


@register_arm
class SftArm(TrainArgs):
    method: Literal["sft"]
    trained: ClassVar[bool] = True
    full_weights: ClassVar[bool] = True
    trainer: ClassVar[str] = "train.sft:train"
    data_file: ClassVar[str] = "train.jsonl"   # the budget's labelled rows
    name: Name = "sft"
    padding_free: Optional[bool] = Field(
        None, description="TRL's padding-free batches: a batch is one row of concatenated examples, "
        "attention kept within each (default: padded)")


@register_arm
class LoraArm(TrainArgs):
    method: Literal["lora"]
    trained: ClassVar[bool] = True
    trainer: ClassVar[str] = "train.sft:train"
    data_file: ClassVar[str] = "train.jsonl"
    name: Name = "lora"
    learning_rate: float = Field(2e-4, gt=0)
    r: int = Field(16, gt=0)
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: Union[str, list[str]] = "all-linear"
    padding_free: Optional[bool] = Field(None, description="as for sft")


@register_arm
class PretrainArm(TrainArgs):
    """Causal-LM training on monolingual text: `cpt` on one target language, `mixed` on several. Each stops at
    exactly data.token_budget training tokens; one sequence never holds two documents (no packing)."""
    method: Literal["cpt", "mixed"]
    trained: ClassVar[bool] = True
    full_weights: ClassVar[bool] = True
    trainer: ClassVar[str] = "train.pretrain:train"
    # one token stream per configured arm, for every seed
    data_file: ClassVar[str] = "pretrain-{family}.jsonl"
    name: Optional[Name] = Field(None, description="default: the method")
    langs: list[str] = Field(min_length=1, description="cpt: [the target language]; mixed: two or more")
    text: list[MonoSource] = Field(
        default_factory=lambda: [BibleText()], min_length=1,
        description="monolingual text sources (default: the Bible's training books)")
    probabilities: Optional[dict[str, float]] = Field(
        None, description="mixed: explicit sampling probability per language")
    alpha: float = Field(0.3, gt=0, le=1, description="mixed without probabilities: p_l proportional to "
                         "n_l^alpha (n_l: the language's tokens of text)")

    @model_validator(mode="after")
    def _check(self) -> "PretrainArm":
        self.name = self.name or self.method
        self.langs = [check_language(lang) for lang in self.langs]
        if len(set(self.langs)) != len(self.langs):
            raise ValueError(f"langs repeats a language: {self.langs}")
        if self.method == "cpt" and len(self.langs) != 1:
            raise ValueError("cpt trains on one language (langs: [de]); use method: mixed for several")
        if self.method == "mixed" and len(self.langs) < 2:
            raise ValueError("mixed needs two or more langs")
        if self.epochs != 1:
            raise ValueError("epochs: a pretraining arm's length is data.token_budget, not epochs")
        if self.probabilities is not None:
            if set(self.probabilities) != set(self.langs):
                raise ValueError(f"probabilities must name exactly the langs {self.langs}")
            if (any(p <= 0 for p in self.probabilities.values())
                    or abs(sum(self.probabilities.values()) - 1) > 1e-6):
                raise ValueError("probabilities must be positive and sum to 1")
        return self


SELECT = Literal["random", "similar"]


class Shots(Strict):
    """In-context demonstrations from the budget's rows (align/demos.py): `shots` per item, drawn at random
    (seeded, per item) or the most similar sources (BM25, most similar last); a prompt longer than
    `max_prompt_tokens` drops whole shots, never part of one."""
    shots: Optional[int] = Field(None, ge=0, le=64, description="demonstrations per test item")
    select: Optional[SELECT] = Field(None, description="random (default: a seeded draw per item) or similar")
    max_prompt_tokens: Optional[int] = Field(
        None, gt=0, description="bound on the prompt with its demonstrations, in base-model tokens "
        "(default 1024): whole shots are dropped from the least similar, and counted")

    @model_validator(mode="after")
    def _with_shots(self) -> "Shots":
        for field in ("select", "max_prompt_tokens"):
            if getattr(self, field) is not None and not self.shots:
                raise ValueError(f"{field}: only used with shots (> 0)")
        return self

    @property
    def selection(self) -> str:
        return self.select or "random"

    @property
    def prompt_bound(self) -> int:
        return self.max_prompt_tokens or 1024

    @property
    def shot_suffix(self) -> str:
        return f"-{self.selection}-{self.shots}shot" if self.shots else ""


@register_arm
class PrettyArm(Shots):
    method: Literal["pretty"]
    name: Optional[Name] = Field(None, description="default: pretty-<prior>-k<k>")
    prior: str = Field(description="a registered prior source: " + ", ".join(PRIORS))
    k: int = Field(ge=0)
    from_arm: Optional[str] = Field(
        None, description="training arm whose checkpoint gives the prior (sft/lora priors)")
    task_model: Optional[str] = Field(
        None, description="task_model prior: any other model or checkpoint directory")
    dictionary_path: Optional[str] = Field(None, description="dictionary prior: TSV or FreeDict TEI file; "
                                           "default: a lexicon induced from the budget's own pairs")
    n_words: int = Field(1, ge=1, description="dictionary prior: translate the first n content words")

    @field_validator("prior")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in PRIORS:
            raise ValueError(f"unknown prior source {v!r} (sources: {', '.join(PRIORS)}; "
                             "a plugin registers more)")
        return v

    @property
    def source(self) -> PriorSource:
        return PRIORS[self.prior]

    @model_validator(mode="after")
    def _defaults(self) -> "PrettyArm":
        if self.name is None:
            self.name = check_name(f"pretty-{self.prior}-k{self.k}{self.shot_suffix}")
        needs = self.source.needs
        if needs == "arm" and self.from_arm is None:
            self.from_arm = self.source.arm_method
        if needs != "arm" and self.from_arm is not None:
            raise ValueError(f"from_arm is only used by prior: sft or lora, not prior: {self.prior}")
        if (needs == "model") != (self.task_model is not None):
            raise ValueError("task_model is required by, and only used by, prior: task_model")
        return self


# after PrettyArm: a registered method keeps its colour in every plot (eval/report_plots.py)
@register_arm
class IclArm(Shots):
    """In-context learning: a model prompted with `shots` of the budget's examples before each test item. The
    base model, or with `from_arm` a training arm's checkpoint (does a trained model still gain from
    examples?)."""
    method: Literal["icl"]
    name: Optional[Name] = Field(None, description="default: icl-<select>-<shots>shot (<from_arm>-icl-...)")
    shots: int = Field(4, ge=0, le=64)
    from_arm: Optional[str] = Field(None, description="a training arm whose checkpoint is prompted "
                                    "(default: the base model)")

    @model_validator(mode="after")
    def _defaults(self) -> "IclArm":
        if self.name is None:
            self.name = check_name(f"{self.from_arm + '-' if self.from_arm else ''}icl-{self.selection}-"
                                   f"{self.shots}shot")
        return self


@register_arm
class NudgeArm(Strict):
    """Adaptive priors (nudging, Fei et al. 2024): the base model decodes greedily; wherever its top-1
    probability is below `threshold`, the aligned model (a training arm, or a task_model with the same
    vocabulary) supplies that token instead. threshold 0: the base model; 1: the aligned model."""
    method: Literal["nudge"]
    name: Optional[Name] = Field(None, description="default: nudge-<from_arm>-t<100 x threshold>")
    threshold: float = Field(ge=0, le=1)
    from_arm: Optional[str] = Field(None, description="the sft or lora arm that supplies tokens (default: "
                                    "sft, unless task_model is given)")
    task_model: Optional[str] = Field(None, description="or any other model with the base model's "
                                      "vocabulary")

    @model_validator(mode="after")
    def _defaults(self) -> "NudgeArm":
        if self.from_arm is not None and self.task_model is not None:
            raise ValueError("from_arm and task_model: give one model to nudge from")
        if self.task_model is None and self.from_arm is None:
            self.from_arm = "sft"
        if self.name is None:
            # t40 for 0.4, t40p4 for 0.404: two thresholds never share a name
            percent = f"{100 * self.threshold:.6g}".replace(".", "p")
            self.name = check_name(f"nudge-{self.from_arm or 'model'}-t{percent}")
        return self
