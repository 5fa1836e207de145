"""A dataset entry's typed step settings (ddb.settings): the records name exactly the schema's keys, carry
the validated config's values (its defaults, never their own) and refuse a key they do not know."""

from __future__ import annotations

import dataclasses

import pytest

from helpers import REPO

from ddb.config import load_config, load_schema
from ddb.errors import DDBError
from ddb.settings import (SECTIONS, DatasetSettings, IgSettings, PruneSettings, dataset_settings,
                          section_settings)


@pytest.fixture(scope="module")
def demo_entry() -> dict:
    return load_config(REPO / "config.yaml")["datasets"]["demo"]


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_each_record_names_exactly_the_schemas_keys(section):
    schema = load_schema()["definitions"]["dataset"]["properties"][section]["properties"]
    assert [field.name for field in dataclasses.fields(SECTIONS[section])] == list(schema)


def test_no_record_declares_a_default_of_its_own():
    for record in (*SECTIONS.values(), DatasetSettings):
        assert all(field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
                   for field in dataclasses.fields(record)), record.__name__


def test_the_validated_demo_entry_reads_as_its_settings(demo_entry):
    settings = dataset_settings(demo_entry, "demo")
    assert settings.classes == ["landbird", "waterbird"] and settings.class_balance == "none"
    assert settings.ig == IgSettings(n_steps=16, internal_batch_size=128, batch_size=16)
    assert settings.prune == PruneSettings(enabled=True, thresholds=[0.0, 0.0])
    assert settings.inpainting.paste_back is True  # FORMAT_DEFAULTS' synthetic entry
    assert settings.masking.detector == "IDEA-Research/grounding-dino-base"  # the schema's default
    assert settings.low_loss.k == [50, 50]  # one K per class, as validation leaves it
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.ig.n_steps = 32


def test_a_rules_cfg_param_gives_only_its_sections(demo_entry):
    params = {key: demo_entry[key] for key in ("classifier", "ig")}  # rule ig_score's cfg
    settings = dataset_settings(params, "demo")
    assert settings.ig.n_steps == 16 and settings.classifier.image_size == 64
    assert settings.inpainting is None and settings.classes is None


def test_an_unknown_key_is_refused_by_name(demo_entry):
    with pytest.raises(DDBError, match=r"datasets\.demo\.ig\.steps: is no setting of IgSettings \(it has "
                                       r"n_steps, internal_batch_size, batch_size\)"):
        dataset_settings({"ig": {**demo_entry["ig"], "steps": 3}}, "demo")
    with pytest.raises(DDBError, match=r"datasets\.demo\.colour: is no setting of a dataset entry"):
        dataset_settings({**demo_entry, "colour": "blue"}, "demo")


def test_a_missing_key_is_refused_by_name(demo_entry):
    ig = {key: value for key, value in demo_entry["ig"].items() if key != "internal_batch_size"}
    with pytest.raises(DDBError, match=r"datasets\.demo\.ig\.internal_batch_size: is missing"):
        dataset_settings({"ig": ig}, "demo")
    with pytest.raises(DDBError, match=r"datasets\.demo\.prune: is False, not a section"):
        section_settings(PruneSettings, False, "datasets.demo.prune")
