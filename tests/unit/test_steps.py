"""ddb.steps against what reads it: the rule an error's fix names for every artifact of a run, ddb inspect's
steps and presenters, the README's table of steps. The rules Snakemake parses: tests/workflow/test_steps_rules.py."""

from __future__ import annotations

import importlib.util
import re

from helpers import REPO
from ddb import steps
from ddb.paths import ARTIFACTS, RunPaths
from ddb.resources import DEFAULT_RESOURCES
from ddb.storage.remake import remake_hint, rule_of


def test_every_artifact_has_its_writer_and_the_resource_classes_are_known():
    owned = {name for rule in steps.rules() for name in rule.writes + rule.also_writes}
    assert set(ARTIFACTS) - owned == {"tune_candidate_dir"}  # the folder of a candidate's files
    assert owned <= set(ARTIFACTS)
    classes = {rule.resources for rule in steps.rules()} - {None}
    assert classes == set(DEFAULT_RESOURCES)
    # a rule that asks for resources of its own names them by its own name in its .smk file
    smk = "".join(path.read_text() for path in (REPO / "rules").glob("*.smk"))
    for rule in steps.rules():
        asks = f'rule_resources("{rule.name}")' in smk
        assert asks == (rule.resources is not None and rule.name != "tune_retrain"), rule.name
    assert steps.resource_class("tune_retrain") == steps.resource_class("retrain")  # `use rule retrain`


def test_rule_of_names_the_writer_of_every_artifact_of_a_tuned_run_and_a_seed_run(tmp_path):
    expected = {"manifest": "prepare_dataset", "groups": "prepare_dataset", "dataset_root": "prepare_dataset",
                "erm_model": "train_erm", "erm_history": "train_erm", "low_loss": "select_low_loss",
                "psi": "mean_softmax", "ti_embeds": "textual_inversion", "ti_samples": "textual_inversion",
                "ti_loss": "textual_inversion", "mask_tar": "mask", "mask_index": "mask", "inpaint_tar": "inpaint",
                "inpaint_index": "inpaint", "ig_scores": "ig_score", "prune": "prune", "retrain_model": "retrain",
                "retrain_history": "retrain", "tune_prune": "tune_prune", "tune_model": "tune_retrain",
                "tune_history": "tune_retrain", "tune_candidates": "tune_select", "tune_selected": "tune_select",
                "tune_candidate_dir": None, "eval_json": "evaluate", "eval_table": "evaluate",
                "report_tune_html": "visualize_tune", "report_tune_csv": "visualize_tune",
                "seed_summary": "seed_summary", "seed_summary_table": "seed_summary"}
    expected.update({name: "dfr" for name in ARTIFACTS if name.startswith("dfr_")})
    expected.update({name: "visualize" for name in ARTIFACTS if name.startswith("report_") and "tune" not in name})
    assert set(expected) == set(ARTIFACTS)
    wildcards = {"cls": "landbird", "src": "landbird", "dst": "waterbird", "n": 1, "cand": "P0_0-g1_1",
                 "pair": "landbird_to_waterbird"}
    base, seed_run = RunPaths(tmp_path / "results" / "demo"), RunPaths(tmp_path / "results" / "demo" / "seed-2")
    for name, template in ARTIFACTS.items():
        values = {key: wildcards[key] for key in re.findall(r"\{(\w+)\}", template)}
        assert rule_of(base.path(name, **values)) == expected[name], name
        in_seed_run = {"manifest": "seed_run_data", "groups": "seed_run_data"}.get(name, expected[name])
        assert rule_of(seed_run.path(name, **values)) == in_seed_run, name
    assert rule_of(tmp_path / "results" / "demo" / "notes.txt") is None
    # a class whose name is a folder's of another step still reads as the shard it is
    assert rule_of("results/celeba/masks/erm/shard-0.parquet") == "mask"
    assert remake_hint(base.path("tune_prune", cand="P1_1-g1_1", src="waterbird", dst="landbird")) == (
        "delete it and rerun snakemake: rule tune_prune remakes it (and what depends on it)")


def test_inspect_and_its_help_show_the_registry_steps_with_registered_presenters():
    from ddb.cli import step_help
    from ddb.presenters import overview, registry

    shown = [step.name for step in steps.inspected()]
    assert shown == overview.STEP_NAMES and "dfr" in shown and "tune" in shown
    assert set(registry.SUMMARIES) == set(registry.TABLES) == set(shown)
    assert all(registry.SUMMARIES[name].__name__ == f"_summary_{name}" for name in shown)
    assert all(registry.TABLES[name].__name__ == f"_table_{name}" for name in shown)
    assert {name: registry.ARTIFACT[name].rstrip("/") for name in shown} == {
        s.name: ARTIFACTS[s.shows] for s in steps.inspected()}
    assert step_help().startswith(f"one step's table: {', '.join(shown)} (aliases: ")
    aliases = [alias for step in steps.STEPS for alias in step.aliases]
    assert len(aliases) == len(set(aliases)) and not set(aliases) & set(shown)


def test_every_step_module_exists_and_its_rules_scripts_import_it():
    for step in steps.STEPS:
        assert importlib.util.find_spec(f"ddb.{step.module}") is not None, step.module
    # the scripts of its rules (a `use rule` runs its parent's) call the step's module: directly, or for the
    # dataset's preparation through ddb.scripting
    scripts = {"tune_prune": "prune", "tune_retrain": "retrain", "seed_run_data": None}  # the last: a shell copy
    for step in steps.STEPS:
        sources = [(REPO / "scripts" / f"{scripts.get(rule.name, rule.name)}.py").read_text()
                   for rule in step.rules if scripts.get(rule.name, rule.name)]
        module = step.module
        assert any(re.search(rf"\bddb\.{module}\b|from ddb import .*\b{module}\b", source) for source in sources), \
            step.name


def test_the_when_predicates_agree_with_the_modules_they_stand_for():
    from ddb.tuning import is_tuned

    for entry in ({"tune": None}, {"tune": {"thresholds": [[0.0, 0.0]]}}, {}):
        assert steps.tuned(entry) == is_tuned(entry) != steps.untuned(entry)


def test_readme_table_names_the_registry_steps_and_modules():
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("| step (rule) | module |"):readme.index("Each of these paths")]
    rows = [line.split(" | ")[:2] for line in table.splitlines()[2:] if line.startswith("| `")]
    # a cell names its rules in backquotes, what they run for in parentheses: "`seed_summary` (with `seeds`)"
    listed = {rule: module.strip("` ") for cell, module in rows
              for rule in re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", cell))}
    known = {rule.name: f"ddb.{step.module}" for step in steps.STEPS for rule in step.rules}
    known["paper_table"] = "ddb.paper_table"
    assert listed == {rule: module for rule, module in known.items()
                      if rule not in ("seed_run_data", "visualize", "visualize_tune")}
