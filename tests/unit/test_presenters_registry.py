"""Every step ddb inspect shows has its two presenters, registered under the step's name, once."""

from __future__ import annotations

import pytest

from ddb import steps
from ddb.presenters import registry


def test_every_step_with_an_inspect_line_has_a_summary_and_a_table():
    shown = [step.name for step in steps.STEPS if step.shows]
    assert shown and set(registry.SUMMARIES) == set(registry.TABLES) == set(shown)
    assert all(callable(registry.SUMMARIES[name]) and callable(registry.TABLES[name]) for name in shown)


def test_a_presenter_for_no_step_or_a_second_one_is_refused():
    with pytest.raises(KeyError, match="'seed_summary', which is no step with `shows`"):
        registry.summary("seed_summary")
    with pytest.raises(KeyError, match="a second table for step 'mask'"):
        registry.table("mask")(lambda results: None)
    assert registry.TABLES["mask"].__name__ == "_table_mask"


def test_a_step_without_its_artifact_is_not_run_yet(tmp_path):
    from ddb.presenters.overview import format_step, summarize_step
    from ddb.results.reader import Results

    results = Results(tmp_path / "results" / "demo")
    for step in registry.SUMMARIES:
        line = summarize_step(results, step)
        assert line.status == "missing" and line.artifact == registry.ARTIFACT[step], step
    assert format_step(results, "prune").startswith("prune: not run yet (prune/{src}_to_{dst}.parquet not found")
