"""report.html: the report's tables and plots as one self-contained page (no scripts, no network), readable
in any browser and uploaded with the W&B report artifact. The page is templates/report.html.j2, autoescaped:
arm names, samples and outputs come from results files and are shown as text, never as markup."""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from eval.tables import Table


def code_spans(text: str) -> Markup:
    """Escaped text with Markdown `code` spans as <code> (notes and header lines are written for
    report.md)."""
    return Markup(re.sub(r"`([^`]*)`", r"<code>\1</code>", str(escape(text))))


@lru_cache(maxsize=1)
def _environment() -> Environment:
    # relative to this module, not the working directory: the report is built from any directory
    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, keep_trailing_newline=True)
    env.filters["code_spans"] = code_spans
    return env


def render_html(title: str, header: list[str], sections: dict[str, list[Table]], images: list[str],
                samples: list[tuple[str, list[dict[str, str]]]]) -> str:
    return _environment().get_template("report.html.j2").render(
        title=title, header=header, sections=sections, images=images, samples=samples)
