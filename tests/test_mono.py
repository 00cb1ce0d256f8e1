"""Monolingual text sources of the pretraining arms: documents, their ids, and clear errors."""
from pathlib import Path

import pytest

from core.data.mono import BibleText, GettextText, HubText, ManPages, TextFile, bible_held_out, documents
from core.data.parallel import BibleSource, PudSource
from core.errors import DataMissing, UserError


def test_text_file_documents_are_separated_by_blank_lines(tmp_path):
    (tmp_path / "de.txt").write_text("Erster Absatz.\nNoch eine Zeile.\n\n\nZweiter Absatz.\n",
                                     encoding="utf-8")
    docs = documents([TextFile(source="text", path="de.txt", lang="de")], "de", tmp_path)
    assert [(d.id, d.text) for d in docs] == [("text:de.txt:1", "Erster Absatz.\nNoch eine Zeile."),
                                              ("text:de.txt:5", "Zweiter Absatz.")]
    # other language
    assert documents([TextFile(source="text", path="de.txt", lang="de")], "fr", tmp_path) == []


def test_text_file_errors_name_the_file(tmp_path):
    with pytest.raises(DataMissing, match="nope.txt"):
        documents([TextFile(source="text", path="nope.txt", lang="de")], "de", tmp_path)
    (tmp_path / "bad.txt").write_bytes(b"ok\n\xff\xfe broken")
    with pytest.raises(UserError, match=r"bad.txt: not valid UTF-8 \(byte 3\)"):
        documents([TextFile(source="text", path="bad.txt", lang="de")], "de", tmp_path)


def _books(docs) -> set[int]:
    return {int(d.id.split(":")[2].split(".")[0]) for d in docs}


def test_bible_text_leaves_out_the_test_and_dev_books_and_their_parallels():
    docs = documents([BibleText()], "de")
    # Ruth, Jonah, Mark (test), Esther (dev), and Matthew and Luke, which retell Mark nearly word for word
    assert len(docs) > 1000 and not _books(docs) & {8, 32, 41, 17, 40, 42}
    assert {1, 43, 66} <= _books(docs)   # John is no synoptic parallel
    assert docs[0].id == "bible:s:1.1" and docs[0].text.startswith("Im Anfang schuf Gott")


def test_bible_held_out_books_follow_the_mt_tasks_test_books():
    assert bible_held_out() == {8, 32, 41, 17, 40, 42}
    # 2 Samuel: Kings, Chronicles
    mt = [BibleSource(source="bible", test_books=[10]), PudSource(source="pud")]
    assert bible_held_out(mt) == {9, 10, 11, 12, 13, 14, 17}
    docs = documents([BibleText(test_books=[66])], "de", None, bible_held_out(mt))   # test_books adds books
    assert not _books(docs) & {9, 10, 11, 12, 13, 14, 17, 66} and {40, 41, 42} <= _books(docs)


@pytest.mark.skipif(not Path("/usr/share/locale/de/LC_MESSAGES").is_dir(), reason="no gettext catalogs here")
def test_gettext_catalogs_give_translated_messages():
    docs = documents([GettextText(source="gettext")], "de")
    assert docs and all(d.id.startswith("gettext:de/") and d.id.endswith(".mo") for d in docs)
    text = "\n".join(d.text for d in docs)
    assert "Datei" in text   # German UI strings, not the English msgids


def test_missing_gettext_dir_and_unreachable_hub_are_clear(tmp_path, monkeypatch):
    with pytest.raises(DataMissing, match="no catalogs for 'de'"):
        documents([GettextText(source="gettext", dir=str(tmp_path))], "de")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataMissing,
                       match="hub dataset 'someone/not-here'.*use a text or bible source offline"):
        documents([HubText(source="hub", name="someone/not-here", lang="de")], "de")


@pytest.mark.skipif(not Path("/usr/share/man/de").is_dir(), reason="no German manual pages here")
def test_manual_pages_are_text_without_roff_markup():
    docs = documents([ManPages(source="manpages")], "de")
    assert docs and all(d.id.startswith("manpages:de/man") for d in docs)
    apropos = next(d for d in docs if d.id.endswith("/apropos.1.gz"))
    assert "Suche in Handbuchseiten" in apropos.text
    assert not any(mark in apropos.text for mark in ("\\fB", "\\fP", ".SH", '.\\"'))
