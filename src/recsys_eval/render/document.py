"""A format-neutral report document: the verdict box, then sections of blocks (paragraphs,
bullet lists, key/value and column tables, charts). `sections.py` builds it from a report.v1
dict; `markdown.py` and `html.py` only lay it out, so both formats say the same thing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Tone = Literal["good", "warn", "bad", "neutral"]


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]
    title: str = ""


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]
    title: str = ""
    # columns whose cells are numbers (right-aligned)
    numeric: tuple[int, ...] = ()


@dataclass(frozen=True)
class Chart:
    """A chart the HTML writer draws with charts.py; Markdown shows its table instead."""

    kind: str  # forest | grouped_bars | weights | srm | wins
    title: str
    data: dict[str, Any]
    alt: str = ""


Block = Paragraph | Bullets | Table | Chart


@dataclass
class Section:
    title: str
    anchor: str
    blocks: list[Block] = field(default_factory=list)
    level: int = 2

    def add(self, *blocks: Block | None) -> Section:
        self.blocks.extend(b for b in blocks if b is not None)
        return self


@dataclass(frozen=True)
class Verdict:
    label: str  # e.g. HOLD, PASS, A/A CHECK PASSED
    tone: Tone
    headline: str  # one sentence: what was compared / decided
    reasons: list[str]
    warnings: list[str] = field(default_factory=list)  # the report's `warnings`, shown with it


@dataclass
class Document:
    title: str
    meta: list[tuple[str, str]]
    verdict: Verdict
    sections: list[Section]
