"""Machine translation: one budget of parallel pairs per direction, scored by sacreBLEU (BLEU, chrF) and the
off-target rate (lingua)."""
from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from core.data.budget import check_disjoint, select
from core.data.parallel import Pair, ParallelSource, load_pairs
from core.errors import DataMissing, UserError
from core.prompts import translation_completion, translation_prompt
from core.schema import Strict, check_direction
from eval.mt import MIN_CONFIDENCE, MIN_LETTERS, score_translations
from tasks.base import Column, Context, Prepared, Quality, Scored, Task, dev_size, register


class MtTask(Strict):
    """Machine translation: one budget of parallel pairs per direction."""
    directions: list[str] = Field(min_length=1, description="e.g. ['en-de', 'en-fr']")
    train: ParallelSource
    # Tried in order: the first source whose data is present is the test set (e.g. PUD, else held-out Bible
    # books).
    test: list[ParallelSource] = Field(min_length=1)

    @field_validator("directions")
    @classmethod
    def _directions(cls, v: list[str]) -> list[str]:
        return [check_direction(d) for d in v]


def _rows(pairs: list[Pair], src: str, tgt: str) -> list[dict]:
    return [{"id": p.id, "task": "mt", "direction": f"{src}-{tgt}", "src_lang": src, "tgt_lang": tgt,
             "src": p.src, "tgt": p.tgt, "prompt": translation_prompt(p.src, src, tgt),
             "completion": translation_completion(p.tgt)} for p in pairs]


def _test_pairs(task: MtTask, src: str, tgt: str, ddir: Path | None,
                base_dir: Path) -> tuple[list[Pair], str]:
    """The first test source whose data is present (e.g. PUD, else held-out Bible books)."""
    missing = []
    for source in task.test:
        try:
            return load_pairs(source, src, tgt, "test", ddir, base_dir), source.source
        except DataMissing as e:
            missing.append(str(e))
    raise UserError(missing[0] if len(missing) == 1 else "no test source has data: " + " | ".join(missing))


@register
class Translation(Task):
    name = "mt"
    spec = MtTask
    quality = Quality("chrf", "chrF", 100.0)
    columns = (Column("BLEU", "bleu", ".2f"), Column("chrF", "chrf", ".2f"), Column("chrF ±95%", "ci", ".2f"),
               Column("off-target %", "off_target_rate", "percent"),
               Column("too short to tell %", "off_target_undecided_rate", "percent"),
               Column("degenerate %", "degenerate_rate", "percent"))
    resample = "chrf"
    order = 0

    @classmethod
    def report_note(cls, rows: list[dict]) -> str:
        signatures = []
        for name, title in (("bleu", "BLEU"), ("chrf", "chrF")):
            found = sorted({s for r in rows if (s := (r.get("signatures") or {}).get(name))})
            signatures.append(f"{title} " + (", ".join(f"`{s}`" for s in found) or "n/a"))
        return (" Off-target: lingua's language of the output is not the target; an empty output is "
                f"off-target, one with fewer than {MIN_LETTERS} letters that lingua is less than "
                f"{100 * MIN_CONFIDENCE:.0f}% sure of is too short to tell and counted neither way "
                "(\"Ja.\" reads as Polish). sacreBLEU signatures: " + "; ".join(signatures))

    def units(self) -> list[str]:
        return self.spec.directions

    def prepare(self, ctx: Context) -> Prepared:
        cfg, task, out = ctx.cfg, self.spec, Prepared()
        for direction in task.directions:
            src, tgt = direction.split("-")
            try:
                train_all = load_pairs(task.train, src, tgt, "train", ctx.data_dir, ctx.base_dir)
            except DataMissing as e:
                raise UserError(str(e)) from None
            test_all, test_source = _test_pairs(task, src, tgt, ctx.data_dir, ctx.base_dir)
            try:   # the training source's held-out dev part (a Bible book), for choices made before the test
                dev_all = load_pairs(task.train, src, tgt, "dev", ctx.data_dir, ctx.base_dir)
            except DataMissing as e:
                print(f"[prepare] mt {direction}: no dev split ({e})", flush=True)
                dev_all = []
            train = select(train_all, cfg.data.budget, cfg.seed,
                           f"data.budget (mt {direction} training pairs)")
            test = select(test_all, cfg.data.test_size, cfg.seed,
                          f"data.test_size (mt {direction} {test_source} pairs)")
            dev = select(dev_all, dev_size(cfg, len(dev_all)), cfg.seed, "data.dev_size") if dev_all else []
            check_disjoint(train, test)
            check_disjoint(train, dev)
            out.rows["train"] += _rows(train, src, tgt)
            out.rows["test"] += _rows(test, src, tgt)
            out.rows["dev"] += _rows(dev, src, tgt)
            out.manifest[f"mt {direction}"] = {
                "train_source": task.train.source, "train_available": len(train_all),
                "train_used": len(train),
                "test_source": test_source, "test_available": len(test_all), "test_used": len(test),
                "dev_source": task.train.source if dev else None, "dev_used": len(dev)}
        return out

    def loop_language(self, unit: str) -> str:
        return unit.split("-")[1]

    def held_out_sources(self) -> list:
        return [self.spec.train, *self.spec.test]

    def score(self, items, outputs, unit) -> Scored:
        s = score_translations([g.text for g in outputs], [r["tgt"] for r in items], unit.split("-")[1],
                               [r["src"] for r in items], getattr(self.cfg.eval, "comet", None), f"mt {unit}")
        return Scored(s["metrics"], s["per_item"], items, outputs, s.get("signatures", {}),
                      {"comet": s["comet"]} if "comet" in s else {})

    def record_extra(self, arm, unit, job_record, scored) -> dict:
        """Which COMET model scored the record (or why COMET was skipped), when the config asks for it."""
        return {"comet": scored.extra["comet"]} if "comet" in scored.extra else {}
