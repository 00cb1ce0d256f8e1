"""A report table, built once and written as Markdown (report.md), HTML (report.html, by its template) and a
W&B Table."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""                 # shown under the table; `code` spans allowed
    numeric: list[bool] = field(default_factory=list)  # right-aligned columns (all but the first by default)

    def right_aligned(self) -> list[bool]:
        """Per column, whether it is right-aligned (numbers line up)."""
        return [self.numeric[j] if self.numeric else j > 0 for j in range(len(self.header))]

    def markdown(self, level: int = 2) -> str:
        def cell(text: str) -> str:
            return str(text).replace("|", "\\|").replace("\n", " ")

        lines = [f"{'#' * level} {self.title}\n", "| " + " | ".join(map(cell, self.header)) + " |",
                 "|" + "|".join("---:" if right else "---" for right in self.right_aligned()) + "|"]
        lines += ["| " + " | ".join(map(cell, row)) + " |" for row in self.rows]
        if self.note:
            lines.append("\n" + self.note)
        return "\n".join(lines) + "\n"

    def wandb(self):
        import wandb

        return wandb.Table(columns=self.header, data=[list(map(str, row)) for row in self.rows])


def flops_text(v: float | None) -> str:
    """FLOPs as 3.3e13 (0 as 0, nothing as n/a)."""
    if v is None:
        return "n/a"
    if v == 0:
        return "0"
    mantissa, exponent = f"{v:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"
