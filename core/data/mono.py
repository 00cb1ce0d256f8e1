"""Monolingual text for the pretraining arms (cpt, mixed), as documents: Bible chapters outside the
translation test and dev books and their parallels, Debian's translations (gettext catalogs, manual pages),
plain text files, or a streamed hub dataset.

A config lists sources under an arm's ``text:``; ``documents`` asks each of them for the language's documents.
``Document`` lives in ``core.data.types``; callers may keep importing it from here.
"""
from __future__ import annotations

import gettext
import gzip
import re
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from core.data import bible, hub
from core.data.parallel import BibleSource
from core.data.types import Document
from core.errors import DataMissing, UserError


class BibleText(BaseModel):
    """Each chapter of the books *not* held out for translation tests is one document. Held out: the MT task's
    Bible test and dev books with their parallel accounts (``bible_held_out``), plus test_books if set."""
    model_config = ConfigDict(extra="forbid")
    source: Literal["bible"] = "bible"
    translations: dict[str, str] = {}
    # None: derived only (unset, it stays out of the config hash); books listed here are held out in addition
    test_books: Optional[list[int]] = None

    def documents(self, lang: str, base_dir: Path | None, held_out_books: set[int] | None) -> list[Document]:
        books = (bible_held_out() if held_out_books is None else set(held_out_books)) \
            | bible.held_out(self.test_books or ())
        return [Document(i, t) for i, t in bible.chapters(lang, self.translations, sorted(books))]


class GettextText(BaseModel):
    """Translated messages of every gettext catalog <dir>/<lang>/LC_MESSAGES/*.mo; one catalog is one
    document."""
    model_config = ConfigDict(extra="forbid")
    source: Literal["gettext"]
    dir: str = "/usr/share/locale"

    def documents(self, lang: str, base_dir: Path | None, held_out_books: set[int] | None) -> list[Document]:
        return _gettext(Path(self.dir), lang)


class ManPages(BaseModel):
    """Debian's translated documentation: every manual page <dir>/<lang>/man*/*.gz, roff markup removed; one
    page is one document."""
    model_config = ConfigDict(extra="forbid")
    source: Literal["manpages"]
    dir: str = "/usr/share/man"

    def documents(self, lang: str, base_dir: Path | None, held_out_books: set[int] | None) -> list[Document]:
        return _manpages(Path(self.dir), lang)


class TextFile(BaseModel):
    """A UTF-8 text file in one language; documents are separated by blank lines."""
    model_config = ConfigDict(extra="forbid")
    source: Literal["text"]
    path: str   # relative paths resolve against the config file's directory
    lang: str

    def documents(self, lang: str, base_dir: Path | None, held_out_books: set[int] | None) -> list[Document]:
        return _text_file(self, base_dir) if lang == self.lang else []


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

    def documents(self, lang: str, base_dir: Path | None, held_out_books: set[int] | None) -> list[Document]:
        return _hub(self) if lang == self.lang else []


MonoSource = Annotated[Union[BibleText, GettextText, ManPages, TextFile, HubText],
                       Field(discriminator="source")]


def bible_held_out(mt_sources: list = ()) -> set[int]:
    """The Bible books pretraining text must not hold: the test and dev books of the MT task's Bible sources
    (train and test), else the parallel Bible source's defaults, each with its parallel accounts."""
    bibles = [s for s in mt_sources if isinstance(s, BibleSource)] or [BibleSource(source="bible")]
    return bible.held_out({book for s in bibles
                           for book in [*s.test_books, *(s.dev_books or bible.DEV_BOOKS)]})


def documents(sources: list, lang: str, base_dir: Path | None = None,
              held_out_books: set[int] | None = None) -> list[Document]:
    """Every document in ``lang`` from the sources that have it, deterministic order, empty ones dropped.
    ``held_out_books``: Bible books to leave out (None: ``bible_held_out()``, the defaults)."""
    return [d for source in sources for d in source.documents(lang, base_dir, held_out_books)
            if d.text.strip()]


def _gettext(directory: Path, lang: str) -> list[Document]:
    folder = directory / lang / "LC_MESSAGES"
    if not folder.is_dir():
        raise DataMissing(f"gettext source: {folder} does not exist (no catalogs for {lang!r})")
    docs, skipped = [], []
    for path in sorted(folder.glob("*.mo")):
        try:
            with open(path, "rb") as f:
                catalog = gettext.GNUTranslations(f)._catalog
        # not UTF-8 (old latin-1 catalogs) or not a catalog: skipped, not fatal
        except (OSError, ValueError):
            skipped.append(path.name)
            continue
        # keys "" (the header) and (msgid, n) plurals: keep singular translations, each once, in file order
        messages = dict.fromkeys(v.strip() for k, v in catalog.items()
                                 if k and (not isinstance(k, tuple) or k[1] == 0) and v.strip())
        docs.append(Document(f"gettext:{lang}/{path.name}", "\n".join(messages)))
    if skipped:
        print(f"[data] gettext {lang}: skipped {len(skipped)} catalogs that are not UTF-8 gettext: "
              f"{' '.join(skipped)}", flush=True)
    return docs


# macros whose arguments are text
_ROFF_TEXT_MACROS = re.compile(r"^\.(?:SH|SS|B|I|BR|IR|RB|RI|BI|IB|TP|IP|SM)\b ?")
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
    import datasets   # ~2 s to import; only hub sources need it

    offline = hub.offline_reason()
    what = f"hub dataset {source.name!r}"
    try:
        with hub.offline(bool(offline)):
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
        raise DataMissing(f"{what}: cannot stream ({offline or reason}); "
                          "use a text or bible source offline") from None
