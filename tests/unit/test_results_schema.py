"""The names written and read are one definition: the writers use ddb.results.schema's, and what they write
matches it."""

from __future__ import annotations

import pandas as pd

from ddb.results import schema
from helpers import settings_of


def test_the_writers_use_the_schema_definitions():
    from ddb import evaluate, inpainting, pruning

    assert evaluate.MODELS is schema.MODELS and evaluate.models_of({"ddb": 1, "erm": 2}) == ["erm", "ddb"]
    assert pruning.REASONS is schema.REASONS
    assert inpainting.generated_id is schema.generated_id
    assert inpainting.INPAINT_INDEX_COLUMNS is schema.INPAINT_INDEX_COLUMNS


def test_a_prune_table_has_the_schema_columns_and_reasons():
    from ddb.pruning import prune

    scores = pd.DataFrame({"sample_id": ["a_to_w", "b_to_w", "c_to_w"], "source_id": ["a", "b", "c"], "y": 1,
                           "source_y": 0, "has_image": [True, True, False], "rho": [0.9, 0.1, float("nan")],
                           "p_source": [0.1, 0.1, float("nan")]})
    table = prune(scores, pd.DataFrame({"class": [0, 1], "psi": [0.8, 0.8]}),
                  settings_of("prune", enabled=True, thresholds=[0.5, 0.5]))
    assert list(table.columns) == schema.PRUNE_COLUMNS
    assert table["reason"].tolist() == ["kept", "low_ig", "no_mask"] and set(table["reason"]) <= set(schema.REASONS)


def test_a_generated_id_and_its_pattern_read_each_other_back():
    assert schema.generated_id("train00001", "waterbird") == "train00001_to_waterbird"
    assert schema.generated_id("train00001", "waterbird", draw=2, per_source=3) == "train00001_to_waterbird_2"
    pattern = schema.generated_id_pattern("waterbird")
    assert pattern.fullmatch("train00001_to_waterbird_2")[1] == "train00001"
    assert pattern.fullmatch("a_to_b_to_waterbird")[1] == "a_to_b"
    assert pattern.fullmatch("train00001_to_landbird") is None
