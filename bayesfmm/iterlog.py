"""Stata-like iteration log: printed when asked, always recorded."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO

__all__ = ["IterationLog", "mreldif", "reldif"]


def mreldif(new, old) -> float:
    """Stata's ``mreldif``: max |new - old| / (|old| + 1)."""
    import numpy as np

    new = np.asarray(new, dtype=float)
    old = np.asarray(old, dtype=float)
    if new.size == 0:
        return 0.0
    with np.errstate(invalid="ignore"):
        return float(np.max(np.abs(new - old) / (np.abs(old) + 1.0)))


def reldif(new: float, old: float) -> float:
    """Stata's ``reldif``: |new - old| / (|old| + 1)."""
    return abs(new - old) / (abs(old) + 1.0)


@dataclass
class IterationLog:
    """Collects log lines; echoes them to ``stream`` when ``echo`` is true."""

    echo: bool = False
    stream: TextIO | None = None
    lines: list[str] = field(default_factory=list)

    def write(self, line: str = "") -> None:
        self.lines.append(line)
        if self.echo:
            print(line, file=self.stream or sys.stdout, flush=True)

    def iteration(self, it: int, llf: float, tag: str = "", note: str = "") -> None:
        label = f"({tag}) " if tag else ""
        self.write(f"Iteration {it}:{' ' * (3 - len(str(it)) + 1)}{label}log likelihood = {llf:.8g}  {note}".rstrip())

    def __str__(self) -> str:
        return "\n".join(self.lines)
