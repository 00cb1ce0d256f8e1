"""A report table, built once and written as Markdown (report.md), HTML (report.html) and a W&B Table."""
from __future__ import annotations

import html
import re
from dataclasses import dataclass, field


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""                 # shown under the table; `code` spans allowed
    numeric: list[bool] = field(default_factory=list)  # right-aligned columns (all but the first by default)

    def _right(self, j: int) -> bool:
        return self.numeric[j] if self.numeric else j > 0

    def markdown(self, level: int = 2) -> str:
        def cell(text: str) -> str:
            return str(text).replace("|", "\\|").replace("\n", " ")

        lines = [f"{'#' * level} {self.title}\n", "| " + " | ".join(map(cell, self.header)) + " |",
                 "|" + "|".join("---:" if self._right(j) else "---" for j in range(len(self.header))) + "|"]
        lines += ["| " + " | ".join(map(cell, row)) + " |" for row in self.rows]
        if self.note:
            lines.append("\n" + self.note)
        return "\n".join(lines) + "\n"

    def html(self, level: int = 2) -> str:
        align = ['' if not self._right(j) else ' class="num"' for j in range(len(self.header))]
        head = "".join(f"<th{a}>{html.escape(h)}</th>" for a, h in zip(align, self.header))
        body = "\n".join("<tr>" + "".join(f"<td{a}>{html.escape(str(c))}</td>" for a, c in zip(align, row)) + "</tr>"
                         for row in self.rows)
        note = f'<p class="note">{inline_html(self.note)}</p>' if self.note else ""
        return (f"<h{level}>{html.escape(self.title)}</h{level}>\n<table>\n<thead><tr>{head}</tr></thead>\n"
                f"<tbody>\n{body}\n</tbody>\n</table>\n{note}\n")

    def wandb(self):
        import wandb

        return wandb.Table(columns=self.header, data=[list(map(str, row)) for row in self.rows])


def inline_html(text: str) -> str:
    """Escaped text with Markdown `code` spans as <code>."""
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text))
