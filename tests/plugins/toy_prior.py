"""A toy prior source, whole in one file (CONTRIBUTING.md: "add a prior"): the answer starts with the test
item's own source text, k text pieces of it. Deployable: it reads the input, never the reference. Registered
by importing this module (`plugins: [tests.plugins.toy_prior]`)."""
from __future__ import annotations

from align.priors import Priors, PriorSource, register_prior, text_priors


def source_prefix(tok, references: list[str], k: int, *, sources: list[str], prompts: list[str] | None = None,
                  **_) -> Priors:
    ids, _fallbacks = text_priors(tok, sources, k, prompts)
    return Priors(ids, note=f"the source's first {k} piece(s)",
                  chars=[len(tok.decode(i, skip_special_tokens=True).strip()) for i in ids])


register_prior(PriorSource("source_prefix", source_prefix))
