"""Translation quality: corpus BLEU/chrF with sacreBLEU signatures, off-target rate, bootstrap CIs."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from lingua import Language as LinguaLanguage, LanguageDetector, LanguageDetectorBuilder
from sacrebleu.metrics import BLEU, CHRF

from core.languages import LANGUAGES, language

# lingua's member name -> our ISO code, to report detections in the codes used everywhere else.
_CODE_BY_LINGUA = {lang.lingua: code for code, lang in LANGUAGES.items()}


@lru_cache(maxsize=1)
def _detector() -> LanguageDetector:
    # Candidates are only the framework's own languages (language() rejects any other target, so the
    # target is always among them): a small candidate set keeps building and lazy model loading fast,
    # and stops rare look-alike languages from "winning" on short outputs, which would inflate the rate.
    langs = [getattr(LinguaLanguage, lang.lingua) for lang in LANGUAGES.values()]
    return LanguageDetectorBuilder.from_languages(*langs).build()


def detect_languages(texts: list[str]) -> list[str | None]:
    """ISO code of each text's language, None for empty text or when lingua cannot decide."""
    detected = _detector().detect_languages_in_parallel_of(texts)  # None for blank text
    return [_CODE_BY_LINGUA[d.name] if d is not None else None for d in detected]


def score_translations(hyps: list[str], refs: list[str], tgt_lang: str) -> dict:
    """Corpus BLEU (target-appropriate tokenizer) and chrF, off-target rate in [0, 1], and per-item
    sentence chrF / off-target flag / detected language for bootstrap CIs and error analysis."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    if not hyps:
        raise ValueError("no translations to score")
    bleu, chrf = BLEU(tokenize=language(tgt_lang).bleu_tokenizer), CHRF()
    detected = detect_languages(hyps)
    off_target = [code != tgt_lang for code in detected]
    return {
        "metrics": {
            "bleu": bleu.corpus_score(hyps, [refs]).score,
            "chrf": chrf.corpus_score(hyps, [refs]).score,
            "off_target_rate": sum(off_target) / len(off_target),
        },
        "signatures": {"bleu": str(bleu.get_signature()), "chrf": str(chrf.get_signature())},
        "per_item": {
            "chrf": [chrf.sentence_score(h, [r]).score for h, r in zip(hyps, refs)],
            "off_target": off_target,
            "lang": detected,
        },
    }


def bootstrap_ci(per_item: list[float], n_resamples: int = 1000, seed: int = 0,
                 alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap (1 - alpha) confidence interval of the mean; same seed, same interval."""
    values = np.asarray(per_item, dtype=float)
    if values.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_resamples, values.size))].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)
