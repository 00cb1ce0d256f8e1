"""CLiKA-style knowledge probes: the same multiple-choice items in every language, scored by the options'
log-likelihood (or the generated option letter). Performance (RA) and consistency (en-CO) are measured against
English in the report (eval/report_knowledge.py)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from core.data import knowledge
from core.decoding import Generation, generate
from core.errors import DataMissing, UserError
from core.prompts import answer_completion, letter_prompt, question_prompt
from core.schema import Strict, check_language
from eval.knowledge import (answer_text, best_options, letter_picks, option_scores, score_choices,
                            scoring_signature)
from tasks.base import Column, Context, Prepared, Quality, Scored, Task, register


class KnowledgeTask(Strict):
    """CLiKA-style knowledge probes: the same multiple-choice items in every language, scored by the options'
    log-likelihood. Performance (RA) and consistency (en-CO) are measured against English."""
    sets: list[Literal["x_geo", "x_name", "x_csqa", "x_copa", "facts"]] = Field(min_length=1)
    langs: list[str] = Field(min_length=2, description="must include en, the reference language")
    scoring: Literal["loglik", "letter"] = Field(
        "loglik", description="loglik: the option with the highest mean token log-likelihood (works for base "
        "models); letter: the option letter the model generates (CLiKA's protocol, for instruction-following "
        "models)")
    # None (unset, left out of the config hash) means "tokens"
    normalise: Literal["tokens", "chars"] | None = Field(
        None, description="loglik scoring, over the option tokens after the options' common prefix: tokens "
        "(unset): log-probability per text-carrying token (a bare space piece joins the next); chars: per "
        "visible character")

    @field_validator("langs")
    @classmethod
    def _langs(cls, v: list[str]) -> list[str]:
        v = [check_language(lang) for lang in v]
        if "en" not in v:
            raise ValueError("must include en: performance and consistency are measured against English")
        return v

    @property
    def directions(self) -> list[str]:
        """'<set>-<lang>': a record's src is the set, its tgt the language."""
        return [f"{s}-{lang}" for s in self.sets for lang in self.langs]


def _rows(task: KnowledgeTask, name: str, lang: str, questions) -> list[dict]:
    return [{"id": q.id, "task": "knowledge", "direction": f"{name}-{lang}",
             "src_lang": lang, "tgt_lang": lang,
             "src": q.question, "tgt": q.options[q.label], "options": list(q.options), "label": q.label,
             "prompt": letter_prompt(q.question, q.options) if task.scoring == "letter"
             else question_prompt(q.question),
             "completions": [answer_completion(o) for o in q.options]} for q in questions]


@register
class Knowledge(Task):
    name = "knowledge"
    spec = KnowledgeTask
    quality = Quality("accuracy", "accuracy", 1.0)
    columns = (Column("accuracy %", "accuracy", "percent"), Column("±95%", "ci", "percent"),
               Column("chance-corrected %", "chance_corrected", "percent"),
               Column("top option position %", "top_position_share", "percent"))
    generates = False
    resample = "exact"
    order = 2

    def units(self) -> list[str]:
        return self.spec.directions

    def prepare(self, ctx: Context) -> Prepared:
        """Test and dev items (the task trains nothing): the same item ids in every language."""
        cfg, task, out = ctx.cfg, self.spec, Prepared()
        for name in task.sets:
            by_lang = {}
            for lang in task.langs:
                try:
                    by_lang[lang] = knowledge.load(name, lang, ctx.data_dir, cfg.seed)
                except DataMissing as e:
                    if lang == "en" or ctx.data_dir is None:   # English is the reference; no data dir: say so
                        raise UserError(str(e)) from None
                    print(f"[prepare] knowledge {name}: no {lang} items ({e}); "
                          f"{lang} is left out of this set", flush=True)
                    out.manifest[f"knowledge {name}-{lang}"] = {"test_source": name, "missing": str(e)}
            chosen, dev = knowledge.select_shared_splits(by_lang, cfg.data.test_size, cfg.seed,
                                                         f"knowledge {name}", cfg.data.dev_size)
            for lang in chosen:
                out.rows["dev"] += _rows(task, name, lang, dev.get(lang, []))
                out.rows["test"] += _rows(task, name, lang, chosen[lang])
                out.manifest[f"knowledge {name}-{lang}"] = {
                    "test_source": name, "test_available": len(by_lang[lang]), "test_used": len(chosen[lang]),
                    "dev_used": len(dev.get(lang, []))}
        return out

    def run(self, model, tok, items, priors, desc) -> list[Generation]:
        """Each item's chosen option as an answer text ("B. Paris")."""
        prompts, n_options = [r["prompt"] for r in items], [len(r["options"]) for r in items]
        if self.spec.scoring == "letter":
            answers = generate(model, tok, prompts, max_new_tokens=4, batch_size=self.cfg.eval.batch_size,
                               desc=desc)
            picks = letter_picks([g.text for g in answers], n_options)
        else:
            picks = best_options(option_scores(model, tok, prompts, [r["completions"] for r in items],
                                               self.cfg.eval.batch_size, desc,
                                               self.spec.normalise or "tokens"))
        return [Generation([], [], answer_text(r["options"], p)) for r, p in zip(items, picks)]

    def score(self, items, outputs, unit) -> Scored:
        picks = [_pick(r["options"], g.text) for r, g in zip(items, outputs)]
        s = score_choices(picks, [r["label"] for r in items], [len(r["options"]) for r in items],
                          scoring_signature(self.spec.scoring, self.spec.normalise))
        # answers and references as "B. Paris": equal exactly when the option index is, so the report's
        # intervals (from outputs and references) count the same items right as per_item.correct
        items = [r | {"tgt": answer_text(r["options"], r["label"])} for r in items]
        return Scored(s["metrics"], s["per_item"], items, outputs, s.get("signatures", {}))


def _pick(options: list[str], answer: str) -> int:
    """The option index an answer text names (`answer_text`'s inverse; -1: none)."""
    return next((i for i in range(len(options)) if answer_text(options, i) == answer), -1)
