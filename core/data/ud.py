"""Universal Dependencies sentences with gold UPOS tags, for cross-lingual part-of-speech tagging (XGLUE
style): train on English, test zero-shot on the Parallel UD (PUD) treebank of another language.

Training reads ``<data_dir>/ud/UD_English-EWT``: only its dev and test files (2,001 + 2,077 sentences) are in
the shared data, so its test file is the training pool and its dev file the dev split (choices made before the
test), and a train file added later does not silently change either.
Testing reads ``<data_dir>/ud/UD_<Language>-PUD/*.conllu`` (1,000 sentences, the same ``sent_id``s as
``pud``). ``TaggedSentence`` lives in ``core.data.types``; callers may keep importing it from here.
"""
from __future__ import annotations

from pathlib import Path
from typing import get_args

import conllu

from core.data.pud import _HOW
from core.data.types import Split, TaggedSentence
from core.errors import DataMissing, UserError
from core.languages import language

UPOS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT",
        "SCONJ", "SYM", "VERB", "X")

_EWT_FILES = {"train": ("*-ud-test.conllu",), "dev": ("*-ud-dev.conllu",)}


def load_tagged(lang: str, split: Split, data_dir: Path | None) -> list[TaggedSentence]:
    """The sentences of ``split`` in file order: English EWT for "train" and "dev", the language's PUD for
    "test"."""
    if split not in get_args(Split):
        raise ValueError(f"split must be one of {get_args(Split)}, got {split!r}")
    name = language(lang).ud_name   # unknown codes fail here, listing the known ones
    if split != "test" and lang != "en":
        raise UserError(f"ud source: only English has a training treebank (EWT), not {language(lang).name}; "
                        "tagging trains on English and tests zero-shot on other languages")
    if not data_dir:
        raise DataMissing(f"ud source: no data directory given; {_HOW}")
    if not Path(data_dir).is_dir():
        raise DataMissing(f"{data_dir}: data directory not found; {_HOW}")
    if split != "test":
        folder, patterns, prefix = Path(data_dir) / "ud" / "UD_English-EWT", _EWT_FILES[split], "ewt"
    else:
        folder, patterns, prefix = Path(data_dir) / "ud" / f"UD_{name}-PUD", ("*.conllu",), "pud"
    files = []
    for pattern in patterns:
        found = sorted(folder.glob(pattern))
        if not found:   # a missing file would silently shrink the pool
            raise DataMissing(f"{folder}: no {pattern} treebank file for {language(lang).name}; {_HOW}")
        files += found
    return [s for path in files for s in _read(path, prefix)]


def _read(path: Path, prefix: str) -> list[TaggedSentence]:
    sentences = []
    with open(path, encoding="utf-8") as f:
        for sentence in conllu.parse_incr(f):
            sent_id = sentence.metadata.get("sent_id")
            if not sent_id:
                raise UserError(f"{path}: a sentence lacks '# sent_id'")
            # int ids are syntactic words; tuples are multi-word-token ranges (3-4) or empty nodes (5.1),
            # so that "zum" is tagged as its words "zu" ADP + "dem" DET
            words = [t for t in sentence if isinstance(t["id"], int)]
            tags = tuple(t["upos"] for t in words)
            if "_" in tags:   # unannotated: nothing to score against
                continue
            unknown = set(tags) - set(UPOS)
            if unknown:
                raise UserError(f"{path}: sentence {sent_id} has a tag outside UPOS: {sorted(unknown)[0]!r}")
            sentences.append(TaggedSentence(f"{prefix}:{sent_id}", tuple(t["form"] for t in words), tags))
    return sentences
