"""How ``ddb inspect`` lays its text out: percentages and left-aligned tables (numbers right-aligned)."""

from __future__ import annotations

import re

import pandas as pd

from ..results.tables import fmt


def pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f} %" if whole else "-"


def format_table(columns: list[str], rows: list[list], title: str | None = None) -> str:
    """A left-aligned text table (numbers right-aligned), with a dashed rule under the header."""
    cells = [[fmt(v) if not isinstance(v, str) else v for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    numeric = [bool(cells) and all(_is_number(r[i]) for r in cells) for i in range(len(columns))]

    def line(values):
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    out = [title] if title else []
    out += [line(columns), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def _is_number(text: str) -> bool:
    return bool(re.fullmatch(r"-|[-+]?\d+(\.\d+)?( %)?", text))


def history_rows(history: pd.DataFrame):
    """A training history (history.parquet) as table columns and rows, the selected epoch marked with *."""
    columns = [c for c in history.columns]
    rows = [[("*" if v else "") if c == "selected" else v for c, v in zip(columns, rec)]
            for rec in history.itertuples(index=False)]
    return columns, rows
