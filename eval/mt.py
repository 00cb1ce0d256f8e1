"""Translation quality: corpus BLEU/chrF with sacreBLEU signatures, off-target rate, per-item scores; COMET
when a config asks for it (eval.comet, scored in COMET's own environment: eval/comet.py)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from lingua import Language as LinguaLanguage, LanguageDetector, LanguageDetectorBuilder
from sacrebleu.metrics import BLEU, CHRF

from core.languages import LANGUAGES, language
from eval.comet import comet_scores

# lingua's member name -> our ISO code, to report detections in the codes used everywhere else.
_CODE_BY_LINGUA = {lang.lingua: code for code, lang in LANGUAGES.items()}


@lru_cache(maxsize=1)
def _detector() -> LanguageDetector:
    # Candidates are only the framework's own languages (language() rejects any other target, so the
    # target is always among them): a small candidate set keeps building and lazy model loading fast,
    # and stops rare look-alike languages from "winning" on short outputs, which would inflate the rate.
    langs = [getattr(LinguaLanguage, lang.lingua) for lang in LANGUAGES.values()]
    return LanguageDetectorBuilder.from_languages(*langs).build()


# An output too short to tell is undecided: counted neither on- nor off-target. lingua calls "Ja." Polish
# (confidence 0.26 over our 15 languages); a full sentence it gets right however flat its confidence, and a
# script of its own (Cyrillic, kana, hangul) it names with confidence 1 at any length, so both must hold.
MIN_LETTERS = 10        # outputs with fewer letters than this ...
MIN_CONFIDENCE = 0.5    # ... and a detection less sure than this are undecided


@dataclass(frozen=True)
class Detection:
    lang: str | None     # ISO code of lingua's most likely language; None for text with no letters
    confidence: float    # lingua's probability of it among the framework's languages
    undecided: bool      # too short to tell (not blank: an empty output is off-target, not undecided)


def detect_languages(texts: list[str]) -> list[Detection]:
    """lingua's most likely language of each text, with its confidence and whether the text is too short to
    tell (fewer than MIN_LETTERS letters and confidence below MIN_CONFIDENCE)."""
    out = []
    for text, values in zip(texts, _detector().compute_language_confidence_values_in_parallel(texts)):
        top = values[0] if values and values[0].value > 0 else None   # all 0: nothing to go on
        confidence = top.value if top else 0.0
        letters = sum(c.isalpha() for c in text)
        out.append(Detection(_CODE_BY_LINGUA[top.language.name] if top else None, confidence,
                             bool(text.strip()) and letters < MIN_LETTERS and confidence < MIN_CONFIDENCE))
    return out


def score_translations(hyps: list[str], refs: list[str], tgt_lang: str, srcs: list[str] | None = None,
                       comet=None, where: str = "mt") -> dict:
    """Corpus BLEU (target-appropriate tokenizer) and chrF, off-target rate in [0, 1] (an empty output is
    off-target, one too short to tell is not: the undecided rate says how often that was), and per-item
    sentence chrF / off-target and undecided flags / detected language for bootstrap CIs and error
    analysis. `comet` (the config's eval.comet: `model`, `batch_size`) adds the `comet` metric and per-item
    scores, and under the key "comet" which model scored (or why COMET was skipped: then no metric)."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    if not hyps:
        raise ValueError("no translations to score")
    bleu, chrf = BLEU(tokenize=language(tgt_lang).bleu_tokenizer), CHRF()
    detected = detect_languages(hyps)
    undecided = [d.undecided for d in detected]
    off_target = [not d.undecided and d.lang != tgt_lang for d in detected]
    scored = {
        "metrics": {
            "bleu": bleu.corpus_score(hyps, [refs]).score,
            "chrf": chrf.corpus_score(hyps, [refs]).score,
            "off_target_rate": sum(off_target) / len(off_target),
            "off_target_undecided_rate": sum(undecided) / len(undecided),
        },
        "signatures": {"bleu": str(bleu.get_signature()), "chrf": str(chrf.get_signature())},
        "per_item": {
            "chrf": [chrf.sentence_score(h, [r]).score for h, r in zip(hyps, refs)],
            "off_target": off_target,
            "off_target_undecided": undecided,
            "lang": [d.lang for d in detected],
        },
    }
    if comet is not None:
        if srcs is None:
            raise ValueError("COMET scores a translation against its source: pass srcs")
        result = comet_scores(srcs, hyps, refs, comet.model, comet.batch_size, where)
        scored["comet"] = result.info
        if result.score is not None:
            scored["metrics"]["comet"] = result.score
            scored["per_item"]["comet"] = result.scores
    return scored

