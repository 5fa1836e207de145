"""A float written as `5e-6` in YAML: PyYAML (YAML 1.1, which Snakemake's configfile reading follows) reads it as
the string '5e-6'; where the schema asks for a number, the config reads it as the number it spells."""

import pytest
import yaml

from ddb.config import validate_config
from ddb.errors import DDBError

ENTRY = """
datasets:
  wb:
    format: waterbirds
    root: data/wb
    retrain: {lr: 5e-6, gammas: [6, 1E+1]}
    prune: {thresholds: [1e0, 2.5e-1]}
    low_loss: {k: 1e3}
"""


def test_exponent_without_a_dot_is_a_number_where_the_schema_wants_one():
    config = yaml.safe_load(ENTRY)
    assert config["datasets"]["wb"]["retrain"]["lr"] == "5e-6"  # what PyYAML makes of it
    validate_config(config)
    entry = config["datasets"]["wb"]
    assert entry["retrain"]["lr"] == 5e-6 and isinstance(entry["retrain"]["lr"], float)
    assert entry["retrain"]["gammas"] == [6, 10.0] and entry["prune"]["thresholds"] == [1.0, 0.25]
    assert entry["low_loss"]["k"] == [1000, 1000] and all(isinstance(k, int) for k in entry["low_loss"]["k"])


def test_other_strings_in_number_places_are_still_refused():
    config = yaml.safe_load(ENTRY.replace("lr: 5e-6", "lr: fast"))
    with pytest.raises(DDBError, match=r"datasets\.wb\.retrain\.lr: 'fast' is not of type 'number'"):
        validate_config(config)


def test_a_string_key_keeps_its_exponent_like_text():
    config = yaml.safe_load(ENTRY.replace("root: data/wb", "root: 1e5"))
    validate_config(config)
    assert config["datasets"]["wb"]["root"].endswith("1e5")
