"""Config values refused at load time with the file they came from: a `seed` outside `seeds`, NaN and
infinity anywhere, and messages naming config.yaml, a --configfile or the --config overrides."""

from __future__ import annotations

import math

import pytest
import yaml
from helpers import small_config

from ddb.config import ConfigSources, validate_config
from ddb.errors import DDBError


def test_a_seed_outside_seeds_is_refused_with_the_fix():
    with pytest.raises(DDBError) as error:
        validate_config({**small_config(), "seed": 3, "seeds": [0, 1]})
    assert str(error.value) == ("config: seed: 3 is not one of seeds [0, 1]: the run of `seed` lies in "
                                "results/<dataset>/ and prepares the data every other seed reads\n"
                                "  fix: add it to seeds or choose one of them (e.g. seed: 0)")
    assert validate_config({**small_config(), "seed": 1, "seeds": [0, 1]})["seed"] == 1


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_number_is_refused_with_its_key_path(value):
    demo = small_config()["datasets"]["demo"]
    with pytest.raises(DDBError) as error:
        validate_config(small_config(prune={"thresholds": [value, 1.0]}, retrain={**demo["retrain"], "lr": value}))
    assert str(error.value) == (f"config: datasets.demo.prune.thresholds.0: {value} is not a finite number (also "
                                "datasets.demo.retrain.lr)\n  fix: give a finite number (YAML `.nan` and `.inf` are "
                                "not accepted anywhere in the config)")


def test_yaml_nan_and_an_overflowing_exponent_are_refused():
    config = yaml.safe_load("datasets:\n  demo: {format: synthetic, root: x, tune: {thresholds: [[.nan, 1]]}}\n")
    with pytest.raises(DDBError, match=r"^config: datasets\.demo\.tune\.thresholds\.0\.0: nan is not a finite number"):
        validate_config(config)
    # YAML 1.1 reads 1e999 as a string; where a number goes it is read as one (inf), and refused
    config = yaml.safe_load("datasets:\n  demo: {format: synthetic, root: x, retrain: {lr: 1e999}}\n")
    with pytest.raises(DDBError, match=r"^config: datasets\.demo\.retrain\.lr: inf is not a finite number"):
        validate_config(config)


def test_a_message_names_the_source_that_set_the_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(small_config()))
    (tmp_path / "more.yaml").write_text("datasets:\n  demo:\n    prune: {thresholds: [.nan, 1]}\n")
    sources = ConfigSources.from_snakemake(["more.yaml", "config.yaml"], ["more.yaml"], {"seed": 7})
    assert [label for label, _ in sources.sources] == ["--config overrides", "more.yaml", "config.yaml"]
    assert sources.origin("seed") == "--config overrides"
    assert sources.origin("datasets.demo.prune.thresholds.0") == "more.yaml"  # the list replaced config.yaml's
    assert sources.origin("datasets.demo.retrain.lr") == "config.yaml"
    assert sources.origin("datasets.demo.dfr.c_grid") is None
    assert sources.describe("datasets.demo.dfr.c_grid") == ("config (a default: not set in --config overrides, "
                                                             "more.yaml, config.yaml, checked in that order)")
    merged = {**small_config(), "seed": 7}
    merged["datasets"]["demo"]["prune"] = {"thresholds": [math.nan, 1]}
    with pytest.raises(DDBError, match=r"^more\.yaml: datasets\.demo\.prune\.thresholds\.0: nan is not a finite"):
        validate_config(merged, sources)
    # a schema error names each key's file, one line each
    merged["datasets"]["demo"]["prune"] = {"thresholds": ["a", 1]}
    merged["seed"] = -1
    with pytest.raises(DDBError) as error:
        validate_config(merged, sources)
    assert str(error.value).startswith("config: invalid configuration\n"
                                       "    more.yaml: datasets.demo.prune.thresholds.0: 'a' is not of type 'number'\n"
                                       "    --config overrides: seed: -1 is less than the minimum of 0\n")


