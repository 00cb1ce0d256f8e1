"""Monolingual text for the pretraining arms (cpt, mixed), as documents: Bible chapters outside the
translation test and dev books and their parallels, Debian's translations (gettext catalogs, manual pages),
plain text files, or a streamed hub dataset.

A config lists sources under an arm's ``text:``; ``documents`` reads every source that has the language.
"""
from __future__ import annotations

import gettext
import gzip
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from core.errors import DataMissing, UserError


@dataclass(frozen=True)
class Document:
    id: str     # stable: bible:s:1.3 (translation, book.chapter), gettext:apt.mo, text:de.txt:12, hub:name:5
    text: str


class BibleText(BaseModel):
    """Each chapter of the books *not* held out for translation tests is one document. Held out: the MT task's
    Bible test and dev books with their parallel accounts (``bible_held_out``), plus test_books if set."""
    model_config = ConfigDict(extra="forbid")
    source: Literal["bible"] = "bible"
    translations: dict[str, str] = {}
    # None: derived only (unset, it stays out of the config hash); books listed here are held out in addition
    test_books: Optional[list[int]] = None


class GettextText(BaseModel):
    """Translated messages of every gettext catalog <dir>/<lang>/LC_MESSAGES/*.mo; one catalog is one document."""
    model_config = ConfigDict(extra="forbid")
    source: Literal["gettext"]
    dir: str = "/usr/share/locale"


class ManPages(BaseModel):
    """Debian's translated documentation: every manual page <dir>/<lang>/man*/*.gz, roff markup removed; one
    page is one document."""
    model_config = ConfigDict(extra="forbid")
    source: Literal["manpages"]
    dir: str = "/usr/share/man"


class TextFile(BaseModel):
    """A UTF-8 text file in one language; documents are separated by blank lines."""
    model_config = ConfigDict(extra="forbid")
    source: Literal["text"]
    path: str   # relative paths resolve against the config file's directory
    lang: str


class HubText(BaseModel):
    """A Hugging Face dataset, streamed (never downloaded whole): the first max_docs rows' text_field."""
    model_config = ConfigDict(extra="forbid")
    source: Literal["hub"]
    name: str
    config: Optional[str] = None
    split: str = "train"
    text_field: str = "text"
    lang: str
    max_docs: int = Field(20000, gt=0)


MonoSource = Annotated[Union[BibleText, GettextText, ManPages, TextFile, HubText], Field(discriminator="source")]


def bible_held_out(mt_sources: list = ()) -> set[int]:
    """The Bible books pretraining text must not hold: the test and dev books of the MT task's Bible sources
    (train and test), else the parallel Bible source's defaults, each with its parallel accounts."""
    from core.data.bible import DEV_BOOKS, held_out
    from core.data.parallel import BibleSource

    bibles = [s for s in mt_sources if isinstance(s, BibleSource)] or [BibleSource(source="bible")]
    return held_out({book for s in bibles for book in [*s.test_books, *(s.dev_books or DEV_BOOKS)]})


def documents(sources: list, lang: str, base_dir: Path | None = None,
              held_out_books: set[int] | None = None) -> list[Document]:
    """Every document in ``lang`` from the sources that have it, deterministic order, empty ones dropped.
    ``held_out_books``: Bible books to leave out (None: ``bible_held_out()``, the defaults)."""
    docs: list[Document] = []
    for source in sources:
        if isinstance(source, (TextFile, HubText)) and source.lang != lang:
            continue
        if isinstance(source, BibleText):
            from core.data.bible import chapters, held_out

            books = (bible_held_out() if held_out_books is None else set(held_out_books)) \
                | held_out(source.test_books or ())
            docs += [Document(i, t) for i, t in chapters(lang, source.translations, sorted(books))]
        elif isinstance(source, GettextText):
            docs += _gettext(Path(source.dir), lang)
        elif isinstance(source, ManPages):
            docs += _manpages(Path(source.dir), lang)
        elif isinstance(source, TextFile):
            docs += _text_file(source, base_dir)
        else:
            docs += _hub(source)
    return [d for d in docs if d.text.strip()]


def _gettext(directory: Path, lang: str) -> list[Document]:
    folder = directory / lang / "LC_MESSAGES"
    if not folder.is_dir():
        raise DataMissing(f"gettext source: {folder} does not exist (no catalogs for {lang!r})")
    docs, skipped = [], []
    for path in sorted(folder.glob("*.mo")):
        try:
            with open(path, "rb") as f:
                catalog = gettext.GNUTranslations(f)._catalog
        except (OSError, ValueError):   # not UTF-8 (old latin-1 catalogs) or not a catalog: skipped, not fatal
            skipped.append(path.name)
            continue
        # keys "" (the header) and (msgid, n) plurals: keep singular translations, each once, in file order
        messages = dict.fromkeys(v.strip() for k, v in catalog.items()
                                 if k and (not isinstance(k, tuple) or k[1] == 0) and v.strip())
        docs.append(Document(f"gettext:{lang}/{path.name}", "\n".join(messages)))
    if skipped:
        print(f"[data] gettext {lang}: skipped {len(skipped)} catalogs that are not UTF-8 gettext: {' '.join(skipped)}",
              flush=True)
    return docs


_ROFF_TEXT_MACROS = re.compile(r"^\.(?:SH|SS|B|I|BR|IR|RB|RI|BI|IB|TP|IP|SM)\b ?")   # macros whose arguments are text
_ROFF_ESCAPES = re.compile(r"\\f(?:\[[^]]*\]|\(..|.)|\\\(..|\\\[[^]]*\]|\\[|&^%:]|\\s[+-]?\d")


def _manpages(directory: Path, lang: str) -> list[Document]:
    folder = directory / lang
    if not folder.is_dir():
        raise DataMissing(f"manpages source: {folder} does not exist (no manual pages in {lang!r})")
    docs = []
    for path in sorted(folder.glob("man*/*.gz")):
        lines = []
        for line in gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace").split("\n"):
            if line.startswith((".\\\"", "'\\\"")):   # comments
                continue
            if line.startswith((".", "'")):
                match = _ROFF_TEXT_MACROS.match(line)
                if not match:   # a formatting request (.TH, .PP, .nf ...), not text
                    continue
                line = line[match.end():].replace('"', "")
            line = _ROFF_ESCAPES.sub("", line).replace("\\-", "-").replace("\\e", "\\").strip()
            if line:
                lines.append(line)
        docs.append(Document(f"manpages:{lang}/{path.parent.name}/{path.name}", "\n".join(lines)))
    return docs


def _text_file(source: TextFile, base_dir: Path | None) -> list[Document]:
    path = Path(source.path).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file():
        raise DataMissing(f"{path}: text file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not valid UTF-8 (byte {e.start})") from None
    docs, lines, start = [], [], 1
    for lineno, line in enumerate(text.split("\n") + [""], 1):
        if line.strip():
            if not lines:
                start = lineno
            lines.append(line.rstrip("\r"))
        elif lines:
            docs.append(Document(f"text:{source.path}:{start}", "\n".join(lines)))
            lines = []
    return docs


def _hub(source: HubText) -> list[Document]:
    import datasets

    from core.data.parallel import _hub_offline, _offline_reason

    offline = _offline_reason()
    what = f"hub dataset {source.name!r}"
    try:
        with _hub_offline(bool(offline)):
            stream = datasets.load_dataset(source.name, source.config, split=source.split, streaming=True)
            docs = []
            for i, row in enumerate(stream):
                if i >= source.max_docs:
                    break
                if source.text_field not in row:
                    raise UserError(f"{what}: no field {source.text_field!r} (fields: {', '.join(row)})")
                if isinstance(row[source.text_field], str):
                    docs.append(Document(f"hub:{source.name}:{i}", row[source.text_field]))
            return docs
    except UserError:
        raise
    except Exception as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise DataMissing(f"{what}: cannot stream ({offline or reason}); use a text or bible source offline") from None
