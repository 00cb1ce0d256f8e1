"""A toy task, whole in one file, as a contributor writes one (CONTRIBUTING.md: "add a task"): repeat a word.

Registered by importing this module, which a config does with `plugins: [tests.plugins.toy_task]`. It needs no
data directory: its words are here."""
from __future__ import annotations

import random

from pydantic import Field

from core.data.budget import select
from core.schema import Strict
from tasks.base import Column, Context, Prepared, Quality, Scored, Task, register

WORDS = ("apple river stone cloud bread house light green table water music paper glass horse field "
         "winter garden silver window market forest letter mirror candle bridge orange summer thunder "
         "pepper valley rocket button castle dragon pillow shadow island marble").split()


class RepeatSpec(Strict):
    langs: list[str] = Field(["en"], min_length=1)


def _rows(words: list[str], lang: str) -> list[dict]:
    return [{"id": f"repeat-{lang}-{w}", "task": "repeat", "direction": f"repeat-{lang}", "src_lang": lang,
             "tgt_lang": lang, "src": w, "tgt": w, "prompt": f"Repeat the word.\nWord: {w}\nRepeated:",
             "completion": f" {w}"} for w in words]


@register
class Repeat(Task):
    name = "repeat"
    spec = RepeatSpec
    quality = Quality("exact", "exact match", 1.0)
    columns = (Column("exact %", "exact", "percent"), Column("±95%", "ci", "percent"))
    resample = "exact"

    def units(self) -> list[str]:
        return [f"repeat-{lang}" for lang in self.spec.langs]

    def prepare(self, ctx: Context) -> Prepared:
        out, cfg = Prepared(), ctx.cfg
        words = list(WORDS)
        random.Random(cfg.seed).shuffle(words)
        train = select(words[:20], cfg.data.budget, cfg.seed, "data.budget (repeat words)")
        test = select(words[20:], cfg.data.test_size, cfg.seed, "data.test_size (repeat words)")
        for lang in self.spec.langs:
            out.rows["train"] += _rows(train, lang)
            out.rows["test"] += _rows(test, lang)
            out.manifest[f"repeat {lang}"] = {"train_used": len(train), "test_used": len(test)}
        return out

    def score(self, items, outputs, unit) -> Scored:
        correct = [int(g.text.strip() == r["tgt"]) for r, g in zip(items, outputs)]
        return Scored({"exact": sum(correct) / len(correct)}, {"correct": correct}, items, outputs)
