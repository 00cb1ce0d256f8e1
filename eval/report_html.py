"""report.html: the report's tables and plots as one self-contained page (no scripts, no network), readable
in any browser and uploaded with the W&B report artifact."""
from __future__ import annotations

import html

from eval.tables import Table, inline_html

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; }
th { background: #f3f3f3; }
td:first-child { white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { font-size: 12px; color: #555; max-width: 1100px; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.scroll { overflow-x: auto; }
details { margin: 0.3em 0; }
"""


def render_html(title: str, header: list[str], sections: dict[str, list[Table]], images: list[str],
                samples: list[tuple[str, list[dict[str, str]]]]) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>", "<ul>" + "".join(f"<li>{inline_html(h)}</li>" for h in header) + "</ul>"]
    for heading, tables in sections.items():
        if heading:
            parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts += [f'<div class="scroll">{t.html(3 if heading else 2)}</div>' for t in tables]
    parts.append("<h2>Plots</h2>")
    parts += [f'<figure><img src="{html.escape(name)}" alt="{html.escape(name)}"></figure>' for name in images]
    parts.append("<h2>Samples</h2>")
    for heading, shown in samples:
        rows = "".join(f"<tr><td>{html.escape(s['id'])}</td><td>{html.escape(s['source'])}</td>"
                       f"<td>{html.escape(s['reference'])}</td><td>{html.escape(s['prior'])}</td>"
                       f"<td>{html.escape(s['output'])}</td></tr>" for s in shown)
        parts.append(f"<details><summary>{html.escape(heading)}</summary><table><thead><tr><th>id</th>"
                     f"<th>source</th><th>reference</th><th>prior</th><th>output</th></tr></thead>"
                     f"<tbody>{rows}</tbody></table></details>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
