"""``ddb inspect``'s three views of a run folder, in plain text (or JSON with ``--json``):

* the overview: one line per step — its artifact, row and image counts, and the step's key figure
  (group counts, K and Ψ, masks detected, images generated, kept %, reasons, WGA before/after);
* ``--step STEP``: that step's own table (e.g. pruning counts per class pair and reason);
* ``--sample ID``: one sample followed through every step (:mod:`ddb.presenters.trace`).

A step whose artifact is missing is listed as "not run yet", one whose artifact is damaged as unreadable
(file and fix, from :mod:`ddb.storage.reading`); ``--verify`` and the list of folders the config no
longer makes are :mod:`ddb.run_audit`'s. Each step's line and table are its presenters
(:mod:`ddb.presenters.registry`).
"""

from __future__ import annotations

from dataclasses import asdict

from ..errors import DDBError
from ..results.reader import Results
from ..run_audit import leftover_folders
from ..selection_checks import format_warnings  # pandas only
from ..steps import inspected
from .registry import ARTIFACT, NOT_RUN, SUMMARIES, TABLES, StepSummary, one_line
from .text import format_table

# (step, aliases a user may type for it), in the order of the overview (ddb.steps)
STEPS = [(step.name, step.aliases) for step in inspected()]
STEP_NAMES = [name for name, _ in STEPS]


class UnknownStep(DDBError):
    pass


def resolve_step(name: str) -> str:
    """The rule name for ``name`` or one of its aliases; UnknownStep listing the choices otherwise."""
    key = name.strip().lower().replace("-", "_")
    for step, aliases in STEPS:
        if key == step or key in aliases:
            return step
    raise UnknownStep("--step", f"unknown step {name!r}; choose one of: {', '.join(STEP_NAMES)}")


# ---------------------------------------------------------------------------------------------------
# The overview: one line per step
# ---------------------------------------------------------------------------------------------------

def summarize(results: Results) -> list[StepSummary]:
    return [summarize_step(results, step) for step in STEP_NAMES]


def summarize_step(results: Results, step: str) -> StepSummary:
    function = SUMMARIES[step]
    try:
        return function(results)
    except FileNotFoundError:
        return StepSummary(step, ARTIFACT[step])
    except DDBError as error:  # a damaged artifact: say which on its line, keep the others
        return StepSummary(step, ARTIFACT[step], figure=f"unreadable: {one_line(error, results)}", status="error")
    except Exception as error:  # a malformed table: say so on its line, keep the others
        return StepSummary(step, ARTIFACT[step], figure=f"unreadable: {type(error).__name__}: {error}",
                           status="error")


def format_overview(results: Results, summaries: list[StepSummary]) -> str:
    classes = results.classes()
    title = f"{results.root}: dataset {results.name}" + (f", classes {', '.join(classes)}" if classes else "")
    table = format_table(["step", "artifact", "rows", "images", "key figure"], [s.as_row() for s in summaries])
    rehearsal = results.rehearsal()
    text = f"{title}\n{rehearsal}\n\n{table}" if rehearsal else f"{title}\n\n{table}"
    warnings = next((s.data.get("warnings") for s in summaries if s.step == "evaluate" and s.data), None)
    if warnings:
        text += "\n\n" + "\n".join(format_warnings(warnings))
    try:
        summary = results.seed_summary()
    except DDBError as error:
        summary = None
        text += f"\n\nseed summary unreadable: {one_line(error, results)}"
    if summary is not None:  # a dataset run over `seeds`: the table of the paper
        from ..summary import format_summary

        text += (f"\n\n{format_summary(summary)}\n(summary.json; the steps above are the config seed's run, the "
                 f"other seeds' runs are {results.root}/seed-<s>/)")
    if leftovers := leftover_folders(results.paths):
        text += "\n\nnot part of the current config (kept; delete them if no longer needed):\n" + "\n".join(
            f"  {results.rel(folder)}/: {why}" for folder, why in leftovers)
    return text


def unreadable(results: Results, summaries: list[StepSummary]) -> bool:
    """Whether something the overview shows could not be read (``ddb inspect`` then exits non-zero)."""
    if any(s.status == "error" for s in summaries):
        return True
    try:
        results.seed_summary()
    except DDBError:
        return True
    return False


# ---------------------------------------------------------------------------------------------------
# One step's table
# ---------------------------------------------------------------------------------------------------

def step_table(results: Results, step: str) -> tuple[str, list[str], list[list]] | None:
    """(title, columns, rows) of ``step``, or None when its artifact is not there yet."""
    try:
        return TABLES[step](results)
    except FileNotFoundError:
        return None


def format_step(results: Results, step: str) -> str:
    table = step_table(results, step)
    if table is None:
        return f"{step}: {NOT_RUN} ({ARTIFACT[step]} not found under {results.root})"
    title, columns, rows = table
    return format_table(columns, rows, title=f"{step}: {title}\n")


def overview_json(results: Results, summaries: list[StepSummary]) -> dict:
    try:
        seed_summary = results.seed_summary()
    except DDBError as error:
        seed_summary = {"unreadable": one_line(error, results)}
    return {"results": str(results.root), "dataset": results.name, "classes": results.classes(),
            "rehearsal": results.rehearsal() is not None, "steps": [asdict(s) for s in summaries],
            "seed_summary": seed_summary,
            "not_in_config": [{"folder": results.rel(folder), "why": why}
                              for folder, why in leftover_folders(results.paths)]}
