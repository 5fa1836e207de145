"""Each step's two presenters, registered by the step's name: its line of the overview (``@summary("mask")``)
and its ``--step`` table (``@table("mask")``). Every step of :mod:`ddb.steps` with ``shows`` has both
(``tests/unit/test_presenters_registry.py`` checks it); the modules that define them are imported by
:mod:`ddb.presenters`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import DDBError
from ..paths import ARTIFACTS
from ..results.reader import Results
from ..steps import inspected

NOT_RUN = "not run yet"

# the artifact each step's line names (ddb.steps, ddb.paths); a folder artifact with its trailing slash
ARTIFACT = {step.name: ARTIFACTS[step.shows] + ("" if Path(ARTIFACTS[step.shows]).suffix else "/")
            for step in inspected()}


@dataclass
class StepSummary:
    step: str
    artifact: str
    rows: int | None = None
    images: int | None = None
    figure: str = NOT_RUN
    status: str = "missing"  # done | missing | partial | error
    data: dict = field(default_factory=dict)

    def as_row(self) -> list:
        return [self.step, self.artifact, "-" if self.rows is None else str(self.rows),
                "-" if self.images is None else str(self.images), self.figure]


# A step's overview line: the run -> its StepSummary (FileNotFoundError: not run yet).
Summary = Callable[[Results], StepSummary]
# A step's table: the run -> (title, columns, rows) (FileNotFoundError: not run yet).
Table = Callable[[Results], tuple[str, list[str], list[list]]]

SUMMARIES: dict[str, Summary] = {}
TABLES: dict[str, Table] = {}


def _register(registry: dict, kind: str, step: str):
    if step not in ARTIFACT:
        raise KeyError(f"{kind} for {step!r}, which is no step with `shows` in ddb.steps.STEPS")

    def register(function):
        if step in registry:
            raise KeyError(f"a second {kind} for step {step!r}: {function.__module__}.{function.__qualname__}")
        registry[step] = function
        return function

    return register


def summary(step: str):
    """Register the decorated function as ``step``'s line of the overview."""
    return _register(SUMMARIES, "summary", step)


def table(step: str):
    """Register the decorated function as ``step``'s ``--step`` table."""
    return _register(TABLES, "table", step)


def one_line(error: DDBError, results: Results) -> str:
    """A DDBError on one line, its file relative to the run."""
    return f"{results.rel(Path(error.where))}: {error.problem}" + (f" (fix: {error.fix})" if error.fix else "")
