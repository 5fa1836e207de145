"""The steps of the workflow, each declared once: its rules, the module that computes it, the artifacts each
rule writes, the resources each rule asks a cluster for, and what ``ddb inspect`` shows of it.

Everything that lists steps reads :data:`STEPS`: the `all` rule's artifacts (:mod:`ddb.targets`) and the
resource defaults (:mod:`ddb.resources`), the rule an error's fix names for a
damaged file (:func:`ddb.storage.remake.rule_of`), the steps of ``ddb inspect`` and its ``--step`` help. The
artifacts are names of :data:`ddb.paths.ARTIFACTS`, which stays the one place of path patterns.
``tests/workflow/test_steps_rules.py`` checks this list against the rules Snakemake parses.

Adding a step takes one :class:`Step` here, its rule in ``rules/*.smk`` (outputs through ``artifact(name)``,
``rule_resources`` / ``rule_threads`` with the rule's own name), a thin ``scripts/<rule>.py``, the module
in this package that computes it, and its tests; a step with ``shows`` also needs its two presenters in
:mod:`ddb.presenters` (``@summary("<step>")`` and ``@table("<step>")``, :mod:`ddb.presenters.registry`). A
rule that is no step's goes in :data:`NON_STEP_RULES`.

This module imports nothing but :mod:`ddb.paths`: the CLI's help reads it (no pandas), and every rule's
script reaches it through the error messages (``ddb.storage.remake``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from .paths import ARTIFACTS


def textual_inversion_enabled(entry: dict) -> bool:
    return entry["textual_inversion"]["enabled"]


def tuned(entry: dict) -> bool:
    """A dataset entry with a `tune` section (ddb.tuning.is_tuned, whose module needs pandas)."""
    return entry.get("tune") is not None


def untuned(entry: dict) -> bool:
    return not tuned(entry)


def dfr_enabled(entry: dict) -> bool:
    return entry["dfr"]["enabled"]


@dataclass(frozen=True)
class Rule:
    """One Snakemake rule of a step.

    ``writes``: the artifacts its outputs are (a directory output: the folder of its artifact);
    ``also_writes``: what it writes beside them that no rule declares (a record, the report's folder).
    ``resources``: its class of cluster resources, a key of :data:`ddb.resources.DEFAULT_RESOURCES`
    (None: the rule declares none; a local rule, or seconds of work). ``runs``: in which runs a job writes
    them: ``every`` run, the dataset's own (``dataset``: the config's seed) or another seed's (``seed``).
    ``in_all``: whether the `all` rule lists its outputs, ``when`` a dataset entry needs them (None: always).
    """

    name: str
    writes: tuple[str, ...]
    also_writes: tuple[str, ...] = ()
    resources: str | None = None
    runs: str = "every"
    in_all: bool = True
    when: Callable[[dict], bool] | None = None

    @property
    def wildcards(self) -> list[str]:
        """The wildcards of its outputs besides the run's (``ds``), in the order the templates name them."""
        found = [key for name in self.writes for key in re.findall(r"\{(\w+)\}", ARTIFACTS[name])]
        return list(dict.fromkeys(found))

    def needed_for(self, entry: dict) -> bool:
        return self.when is None or self.when(entry)


@dataclass(frozen=True)
class Step:
    """One step of DDB: ``name`` is what ``ddb inspect`` calls it (``aliases``: other names a user may type),
    ``module`` the module of this package that computes it (``masking``: ddb.masking; not spelled out in
    full, which ddb.code_versions would read as an import of every step's module), ``shows`` the artifact its ``ddb inspect`` line names
    (None: no line of its own)."""

    name: str
    module: str
    rules: tuple[Rule, ...]
    shows: str | None = None
    aliases: tuple[str, ...] = ()


STEPS: tuple[Step, ...] = (
    Step("prepare_dataset", "datasets", (
        Rule("prepare_dataset", ("manifest", "groups"), also_writes=("dataset_root",), resources="light",
             runs="dataset"),
        # another seed's run copies the dataset's manifest instead of preparing the same images again
        Rule("seed_run_data", ("manifest", "groups"), runs="seed", in_all=False),
    ), shows="manifest", aliases=("data", "manifest", "dataset")),
    Step("train_erm", "erm", (Rule("train_erm", ("erm_model", "erm_history"), resources="training"),),
         shows="erm_history", aliases=("erm",)),
    Step("textual_inversion", "textual_inversion", (
        Rule("textual_inversion", ("ti_embeds", "ti_samples", "ti_loss"), resources="diffusion",
             when=textual_inversion_enabled),
    ), shows="ti_loss", aliases=("ti", "token", "tokens")),
    Step("select_low_loss", "low_loss", (Rule("select_low_loss", ("low_loss",), resources="classifier_pass"),),
         shows="low_loss", aliases=("low_loss", "lowloss")),
    Step("mean_softmax", "low_loss", (Rule("mean_softmax", ("psi",)),), shows="psi", aliases=("psi",)),
    Step("mask", "masking", (Rule("mask", ("mask_tar", "mask_index"), resources="shard_models"),),
         shows="mask_tar", aliases=("masks", "masking")),
    Step("inpaint", "inpainting", (Rule("inpaint", ("inpaint_tar", "inpaint_index"), resources="diffusion"),),
         shows="inpaint_tar", aliases=("inpainting", "generate", "generated")),
    Step("ig_score", "ig_scoring", (Rule("ig_score", ("ig_scores",), resources="shard_models"),),
         shows="ig_scores", aliases=("ig", "scores")),
    Step("prune", "pruning", (Rule("prune", ("prune",), when=untuned),), shows="prune", aliases=("pruning",)),
    Step("retrain", "retrain", (
        Rule("retrain", ("retrain_model", "retrain_history"), resources="training", when=untuned),
    ), shows="retrain_history", aliases=("ddb",)),
    # with a `tune` section, in place of prune and retrain: both once per candidate, then the choice
    Step("tune", "tuning", (
        Rule("tune_prune", ("tune_prune",), when=tuned),
        Rule("tune_retrain", ("tune_model", "tune_history"), resources="training", when=tuned),
        Rule("tune_select", ("tune_candidates", "tune_selected"), when=tuned),
    ), shows="tune_candidates", aliases=("tuning", "tune_select", "candidates")),
    Step("dfr", "dfr", (
        Rule("dfr", ("dfr_model", "dfr_selection", "dfr_halves", "dfr_coefficients", "dfr_features"),
             resources="classifier_pass", when=dfr_enabled),
    ), shows="dfr_selection", aliases=("baseline", "deep_feature_reweighting")),
    Step("evaluate", "evaluate", (Rule("evaluate", ("eval_json", "eval_table"), resources="evaluation"),),
         shows="eval_json", aliases=("eval",)),
    # the report: built by the visualize_all target, not by `all`
    Step("visualize", "visualize", (
        Rule("visualize", ("report_eval_html", "report_eval_csv", "report_retrain_curves", "report_prune_html",
                           "report_prune_csv", "report_kept_vs_pruned", "report_pairs", "report_psi_html",
                           "report_psi_csv", "report_ti_curve", "report_grid_samples"),
             also_writes=("report_dir",), resources="light", in_all=False),
        Rule("visualize_tune", ("report_tune_html", "report_tune_csv"), in_all=False, when=tuned),
    ), shows="report_dir", aliases=("report", "grids")),
    # with `seeds`: the dataset's mean ± std over its runs (ddb inspect prints it below the steps)
    Step("seed_summary", "summary", (
        Rule("seed_summary", ("seed_summary", "seed_summary_table"), runs="dataset", in_all=False),
    )),
)

# The workflow's rules that are no step's, and why.
NON_STEP_RULES = {
    "all": "the default target: every target's eval.json and its steps' artifacts",
    "visualize_all": "the target of the report: each target's visualize (and visualize_tune) outputs",
    "fetch_model": "brings a hub model into the cache before the jobs that load it (results/models/)",
    "paper_table": "the table across the target datasets, in the results folder itself (RESULTS_ARTIFACTS)",
}


def step(name: str) -> Step:
    for found in STEPS:
        if found.name == name:
            return found
    raise KeyError(f"no step {name!r} in ddb.steps.STEPS")


def rules() -> list[Rule]:
    """Every step's rules, in the order of the steps."""
    return [rule for found in STEPS for rule in found.rules]


def rule(name: str) -> Rule:
    for found in rules():
        if found.name == name:
            return found
    raise KeyError(f"rule {name!r} is no step's: declare it in ddb.steps.STEPS (or NON_STEP_RULES)")


def resource_class(rule_name: str) -> str | None:
    """The key of :data:`ddb.resources.DEFAULT_RESOURCES` that rule ``rule_name`` asks for."""
    return rule(rule_name).resources


def inspected() -> list[Step]:
    """The steps ``ddb inspect`` has a line and a table for, in the order it prints them."""
    return [found for found in STEPS if found.shows is not None]


def writers(artifact: str) -> list[Rule]:
    """The rules that write ``artifact`` (one, or one per kind of run)."""
    return [found for found in rules() if artifact in found.writes + found.also_writes]
