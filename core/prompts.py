"""Task prompts. The completion starts with a space so that the first answer token is the same piece
('▁Das', 'ĠDas') whether the answer is trained on, forced as a prior, or generated."""
from __future__ import annotations

from typing import Sequence

from core.languages import language


def translation_prompt(src_text: str, src: str, tgt: str) -> str:
    """ALMA's prompt (Xu et al., 2024)."""
    s, t = language(src).name, language(tgt).name
    return f"Translate this from {s} into {t}:\n{s}: {src_text}\n{t}:"


def translation_completion(tgt_text: str) -> str:
    return " " + tgt_text


def first_line(text: str) -> str:
    """Generated answers end at the first newline: a base model goes on with 'English: ...' otherwise."""
    return text.split("\n", 1)[0].strip()


TAG_FORMATS = ("list", "pairs")


def tagging_prompt(words: Sequence[str], fmt: str = "pairs") -> str:
    """Part-of-speech tagging, in English for every language so that the task format transfers. Words are
    joined by " | " because a few UD words hold a space (French "25 000") and none holds a "|". The answer
    follows "Tags:" (format list: one tag per word) or "Tagged:" (format pairs: each word copied with its
    tag)."""
    from core.data.ud import UPOS   # here, not at the top: translation-only users need not import conllu

    return (f"Tag each word with its Universal Dependencies part-of-speech tag ({' '.join(UPOS)}).\n"
            f"Words: {' | '.join(words)}\n{'Tags' if fmt == 'list' else 'Tagged'}:")


def tagging_completion(words: Sequence[str], tags: Sequence[str], fmt: str = "pairs") -> str:
    """list: " DET NOUN"; pairs: " The/DET cat/NOUN" (a word holding a "/" keeps it: the tag follows the last
    one, "and/or/CCONJ"; see `eval.pos.parse_pairs`)."""
    if fmt == "list":
        return " " + " ".join(tags)
    return " " + " ".join(f"{w}/{t}" for w, t in zip(words, tags, strict=True))


def question_prompt(question: str) -> str:
    """A multiple-choice question, scored by the log-likelihood of each option as the answer. The frame is
    English in every language, as CLiKA's instruction."""
    return f"Question: {question}\nAnswer:"


def answer_completion(option: str) -> str:
    return " " + option


# CLiKA's protocol: an English instruction and a one-shot dummy example, then the question and its options in
# the target language; the model answers with a letter.
_LETTER_EXAMPLE = ("Question: Which of these is a fruit?\nA. hammer\nB. apple\nC. river\nD. chair\n"
                   "Answer: B\n\n")


def letter_prompt(question: str, options: Sequence[str]) -> str:
    letters = "\n".join(f"{chr(ord('A') + i)}. {o}" for i, o in enumerate(options))
    return ("Answer the multiple-choice question with the letter of the correct option.\n\n" + _LETTER_EXAMPLE
            + f"Question: {question}\n{letters}\nAnswer:")
