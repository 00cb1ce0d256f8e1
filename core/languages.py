"""Language codes used throughout (ISO 639-1) and what each tool calls them."""
from __future__ import annotations

from dataclasses import dataclass

from core.errors import UserError


@dataclass(frozen=True)
class Language:
    code: str          # ISO 639-1, used in configs and result records
    name: str          # English name, used in prompts ("Translate this from English into German")
    ud_name: str       # Universal Dependencies folder name (UD_<ud_name>-PUD)
    lingua: str        # lingua.Language member name, for off-target detection
    bleu_tokenizer: str  # sacreBLEU tokenizer for this target language


LANGUAGES: dict[str, Language] = {l.code: l for l in [
    Language("en", "English", "English", "ENGLISH", "13a"),
    Language("de", "German", "German", "GERMAN", "13a"),
    Language("fr", "French", "French", "FRENCH", "13a"),
    Language("es", "Spanish", "Spanish", "SPANISH", "13a"),
    Language("it", "Italian", "Italian", "ITALIAN", "13a"),
    Language("pt", "Portuguese", "Portuguese", "PORTUGUESE", "13a"),
    Language("ru", "Russian", "Russian", "RUSSIAN", "13a"),
    Language("pl", "Polish", "Polish", "POLISH", "13a"),
    Language("ar", "Arabic", "Arabic", "ARABIC", "13a"),
    Language("he", "Hebrew", "Hebrew", "HEBREW", "13a"),
    Language("zh", "Chinese", "Chinese", "CHINESE", "zh"),
    Language("ja", "Japanese", "Japanese", "JAPANESE", "ja-mecab"),
    Language("ro", "Romanian", "Romanian", "ROMANIAN", "13a"),
    Language("ko", "Korean", "Korean", "KOREAN", "ko-mecab"),
    Language("tr", "Turkish", "Turkish", "TURKISH", "13a"),
]}


def language(code: str) -> Language:
    try:
        return LANGUAGES[code]
    except KeyError:
        raise UserError(f"unknown language code {code!r} (known: {', '.join(sorted(LANGUAGES))})") from None
