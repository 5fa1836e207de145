"""ddb.steps against the rules Snakemake parses from the repo's Snakefile: `snakemake --list-rules` names exactly
the registry's rules and the declared others, and each rule outputs exactly its artifacts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO
from ddb import steps
from ddb.paths import ARTIFACTS


@pytest.fixture(scope="module")
def parsed_rules() -> dict:
    """rule -> (outputs as patterns without wildcard constraints, which of them are directories), as the
    Snakemake API parses the repo's Snakefile with the default config."""
    from snakemake.api import SnakemakeApi
    from snakemake.io import is_flagged, strip_wildcard_constraints
    from snakemake.settings.types import OutputSettings, ResourceSettings, StorageSettings

    with SnakemakeApi(OutputSettings()) as api:
        workflow = api.workflow(resource_settings=ResourceSettings(), storage_settings=StorageSettings(),
                                snakefile=REPO / "Snakefile", workdir=REPO)
        return {rule.name: [(strip_wildcard_constraints(str(out)), is_flagged(out, "directory"))
                            for out in rule.output]
                for rule in workflow._workflow.rules}


def test_list_rules_names_exactly_the_registry_rules_and_the_declared_others():
    result = subprocess.run([sys.executable, "-m", "snakemake", "--list-rules"], cwd=REPO, capture_output=True,
                            text=True, check=True)
    listed = {line.strip() for line in result.stdout.splitlines() if re.fullmatch(r"\s*\w+\s*", line)}
    registry = [rule.name for rule in steps.rules()]
    assert len(registry) == len(set(registry))
    assert not set(registry) & set(steps.NON_STEP_RULES)
    assert listed == set(registry) | set(steps.NON_STEP_RULES)


def test_each_registry_rule_outputs_exactly_its_artifacts(parsed_rules):
    for rule in steps.rules():
        expected = set()
        for name in rule.writes:
            template = f"results/{{ds}}/{ARTIFACTS[name]}"
            expected.add((template, False))
        outputs = set(parsed_rules[rule.name])
        # a directory output is the folder of its artifact (the report's grids)
        folders = {(str(Path(template).parent), True): (template, False) for template, _ in expected}
        assert {folders.get(out, out) for out in outputs} == expected, rule.name
        for name in rule.also_writes:
            assert f"results/{{ds}}/{ARTIFACTS[name]}" not in {template for template, _ in outputs}, name
