"""Parallel Universal Dependencies: 1,000 news and Wikipedia sentences translated into each language.

Read from ``<data_dir>/ud/UD_<Language>-PUD/*.conllu``; sentences pair up by their shared ``sent_id``.
"""
from __future__ import annotations

from pathlib import Path

import conllu

from core.data.types import Pair, Split
from core.errors import DataMissing, UserError
from core.languages import language

_HOW = "pass the data directory (config data.dir, or env var YARN_DATA_DIR)"


def load(src_lang: str, tgt_lang: str, split: Split, data_dir: Path | None) -> list[Pair]:
    if split != "test":
        raise UserError(f"pud source: PUD is test data only (1,000 sentences), not {split!r}; "
                        "use another source for training")
    if not data_dir:
        raise DataMissing(f"pud source: no data directory given; {_HOW}")
    src, tgt = _sentences(Path(data_dir), src_lang), _sentences(Path(data_dir), tgt_lang)
    pairs = [Pair(f"pud:{sent_id}", text, tgt[sent_id]) for sent_id, text in src.items() if sent_id in tgt]
    if not pairs:
        raise UserError(f"pud source: the {src_lang} and {tgt_lang} treebanks share no sent_id")
    return pairs


def _sentences(data_dir: Path, lang: str) -> dict[str, str]:
    """sent_id -> text, in file order."""
    if not data_dir.is_dir():
        raise DataMissing(f"{data_dir}: data directory not found; {_HOW}")
    folder = data_dir / "ud" / f"UD_{language(lang).ud_name}-PUD"
    files = sorted(folder.glob("*.conllu"))
    if not files:
        raise DataMissing(f"{folder}: no PUD treebank (.conllu) for {language(lang).name}; {_HOW}")
    sentences = {}
    for path in files:
        with open(path, encoding="utf-8") as f:
            for sentence in conllu.parse_incr(f):
                sent_id, text = sentence.metadata.get("sent_id"), sentence.metadata.get("text")
                if not sent_id or not text or not text.strip():
                    raise UserError(f"{path}: sentence {sent_id or '?'} lacks '# sent_id' or '# text'")
                sentences[sent_id] = text.strip()
    return sentences
