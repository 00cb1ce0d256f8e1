"""CLiKA's conductivity: each `from_arms` model is fine-tuned (an SFT job under DeepSpeed, a probe) on the
fictional facts of each language; XRR is then the probe's accuracy on the facts stated in English only, asked
in that language. The probes are training jobs of this task; their cost is the measurement's, not the
arm's."""
from __future__ import annotations

from typing import Optional

from pydantic import Field, field_validator, model_validator

from core.arms import SftArm, full_weights
from core.data import fictional
from core.errors import DataMissing, UserError
from core.jobs import Job
from core.prompts import answer_completion, question_prompt
from core.schema import TrainArgs, check_language, check_name
from eval.conductivity import MEASURED, score_conductivity
from tasks.base import Column, Context, Prepared, Quality, Scored, Task, register


class ConductivityTask(TrainArgs):
    """CLiKA's conductivity: each `from_arms` model is fine-tuned (SFT under DeepSpeed) on the fictional facts
    of each language; XRR is then its accuracy on the facts stated in English only, asked in that language.
    The training arguments below apply to that fine-tune, which trains until `epochs`, then the gate is
    checked."""
    langs: list[str] = Field(min_length=1, description="CLiKA's target languages: ar de fr he it ja pl ru zh")
    from_arms: list[str] = Field(["base"], min_length=1, description="arms whose model is fine-tuned: "
                                 "base arms (any model) and sft, cpt, mixed arms (their checkpoint)")
    places: Optional[int] = Field(None, gt=0, description="reduced protocol: this many places, half of each "
                                  "type (default: all 400)")
    paraphrases: Optional[int] = Field(None, gt=0, description="reduced protocol: training rows per fact "
                                       "(default: all, about ten)")
    gate: float = Field(0.9, gt=0, le=1, description="accuracy every gate subset must reach for XRR to count "
                        "(translation, English type 0 and 1, X type 0)")
    max_new_tokens: int = Field(32, gt=0, description="answer length at test time")
    epochs: float = Field(10.0, gt=0)
    learning_rate: float = Field(5e-5, gt=0)

    @field_validator("langs")
    @classmethod
    def _langs(cls, v: list[str]) -> list[str]:
        v = [check_language(lang) for lang in v]
        unknown = [lang for lang in v if lang not in fictional.LANGS]
        if unknown:
            raise ValueError(f"no CLiKA fictional data for {unknown} "
                             f"(languages: {' '.join(fictional.LANGS)})")
        return v

    @model_validator(mode="after")
    def _no_init_from(self) -> "ConductivityTask":
        if self.init_from is not None:
            raise ValueError("init_from: the fine-tune starts from each of from_arms")
        return self

    @property
    def directions(self) -> list[str]:
        return [f"fictional-{lang}" for lang in self.langs]

    def probe_name(self, arm: str, lang: str) -> str:
        """The fine-tuned model's directory under checkpoints/."""
        return f"cd-{lang}-{arm}"

    def probe_arm(self, arm: str, lang: str) -> SftArm:
        """The SFT arm that fine-tunes `arm`'s model on `lang`'s fictional facts, with this task's training
        arguments."""
        return SftArm(method="sft", name=self.probe_name(arm, lang),
                      **self.model_dump(include=set(TrainArgs.model_fields) - {"init_from"}))


def _probe(p: dict | None) -> str:
    return "" if not p else f"{p['places']} places, {p['paraphrases']} paraphrase(s), {p['epochs']:g} epochs"


@register
class Conductivity(Task):
    name = "conductivity"
    spec = ConductivityTask
    quality = Quality("xrr", "XRR", 1.0)
    columns = (Column("XRR %", "xrr", "percent"), Column("±95%", "ci", "percent"),
               Column("gate", "gate_passed", "gate"),
               Column("translation %", "translation_accuracy", "percent"),
               Column("en type 0 %", "en_type0_accuracy", "percent"),
               Column("en type 1 %", "en_type1_accuracy", "percent"),
               Column("X type 0 %", "x_type0_accuracy", "percent"),
               Column("probe", "probe", _probe, field=True))
    resample = "contains"
    order = 3

    @classmethod
    def report_note(cls, rows: list[dict]) -> str:
        return (" XRR: accuracy on the X questions about places stated in English only, after the "
                "probe fine-tune; it counts only where the gate is met (translation, en type 0/1, X "
                "type 0 all at or above the gate accuracy). Costs are the arm's own, not the probe's.")

    def units(self) -> list[str]:
        return self.spec.directions

    def check(self, cfg) -> None:
        by_name = {a.name: a for a in cfg.arms}
        for start in self.spec.from_arms:
            if start not in by_name or not (by_name[start].method == "base"
                                            or full_weights(by_name[start].method)):
                raise ValueError(f"tasks.conductivity.from_arms: {start!r} must name a base, sft, cpt or "
                                 f"mixed arm of this experiment")
            for lang in self.spec.langs:
                check_name(self.spec.probe_name(start, lang), "tasks.conductivity: probe ")

    def jobs(self) -> list[Job]:
        out = []
        for name in self.spec.from_arms:
            arm = self.cfg.arm(name)
            base = arm.method == "base"
            for lang in self.spec.langs:
                out.append(Job(self.spec.probe_name(name, lang), self.spec.probe_arm(name, lang),
                               f"fictional-{lang}.jsonl", start=None if base else name,
                               start_model=arm.model if base else None, probe_of=name))
        return out

    def prepare(self, ctx: Context) -> Prepared:
        """Each language's fictional-facts training rows (a probe's file) and its gate and XRR test items."""
        out = Prepared()
        for lang in self.spec.langs:
            try:
                rows, items, out.manifest[f"conductivity {lang}"] = fictional.load(
                    ctx.data_dir, lang, self.spec.places, self.spec.paraphrases, ctx.cfg.seed)
            except DataMissing as e:
                raise UserError(str(e)) from None
            out.files[f"fictional-{lang}.jsonl"] = [
                {"id": r["id"], "task": "conductivity", "fact": r["fact"],
                 "prompt": question_prompt(r["instruction"] + (f"\n{r['input']}" if r["input"] else "")),
                 "completion": answer_completion(r["answer"])} for r in rows]
            out.rows["test"] += [{"id": i.id, "task": "conductivity", "direction": f"fictional-{lang}",
                                  "subset": i.subset, "src_lang": "en", "tgt_lang": lang, "src": i.question,
                                  "tgt": i.expected, "prompt": question_prompt(i.question)} for i in items]
        return out

    def check_lengths(self, tok, prepared: Prepared) -> None:
        for rows in prepared.files.values():
            sizes = [len(ids) + 1 for ids in tok([r["prompt"] + r["completion"] for r in rows]).input_ids]
            if max(sizes) > self.spec.max_length:
                longest = rows[sizes.index(max(sizes))]["id"]
                raise UserError(f"tasks.conductivity.max_length: {longest} is {max(sizes)} "
                                f"tokens, over {self.spec.max_length}")

    def skip(self, arm) -> Optional[str]:
        return None if arm.name in self.spec.from_arms else ""   # only the from_arms have a fine-tuned probe

    def weights_job(self, arm, unit: str) -> Optional[str]:
        return self.spec.probe_name(arm.name, unit.split("-")[1])

    def max_new_tokens(self) -> int:
        return self.spec.max_new_tokens

    def score(self, items, outputs, unit) -> Scored:
        s = score_conductivity([g.text for g in outputs], items, self.spec.gate)
        # the interval and samples are XRR's: the X type-1 questions
        measured = [i for i, r in enumerate(items) if r["subset"] == MEASURED]
        return Scored(s["metrics"], s["per_item"], [items[i] for i in measured],
                      [outputs[i] for i in measured], extra={"subsets": s["subsets"]})

    def record_extra(self, arm, unit, job_record, scored) -> dict:
        task = self.spec
        return {"probe": {"from_arm": arm.name, "places": task.places or "all",
                          "paraphrases": task.paraphrases or "all", "epochs": task.epochs, "gate": task.gate,
                          "train_cost": job_record.stage_cost, "subsets": scored.extra["subsets"]}}
