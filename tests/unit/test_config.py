import pytest

from ddb.config import class_pairs, load_config, validate_config
from ddb.errors import DDBError
from helpers import REPO


def minimal(**entry):
    return {"datasets": {"demo": {"format": "synthetic", "root": "x", **entry}}}


def test_format_and_root_suffice_and_defaults_are_filled():
    config = validate_config(minimal())
    demo = config["datasets"]["demo"]
    assert config["seed"] == 0 and config["results"] == "results" and config["targets"] == ["demo"]  # all datasets
    assert demo["classes"] == ["landbird", "waterbird"]
    assert demo["low_loss"]["k"] == [300, 300]  # one per class
    assert demo["inpainting"]["steps"] == 50 and demo["inpainting"]["guidance_scale"] == 7.5
    assert demo["prune"] == {"enabled": True, "thresholds": [1.0, 1.0]}
    assert demo["textual_inversion"]["enabled"] is True
    assert demo["retrain"]["gammas"] == [1.0, 1.0]


def test_repo_config_is_valid():
    config = load_config(REPO / "config.yaml")
    assert "demo" in config["datasets"] and config["targets"] == ["demo"]


def test_unknown_key_is_named_with_the_allowed_ones():
    with pytest.raises(DDBError, match=r"datasets\.demo\.low_loss: .*'kk' was unexpected.*allowed keys here: \['batch_size', 'k'\]"):
        validate_config(minimal(low_loss={"kk": 3}))


def test_wrong_type_and_range_are_named():
    with pytest.raises(DDBError) as error:
        validate_config(minimal(prune={"thresholds": ["a", 1]}, low_loss={"k": -1}, generation={"shards": 0}))
    message = str(error.value)
    assert "datasets.demo.prune.thresholds.0: 'a' is not of type 'number'" in message
    assert "datasets.demo.low_loss.k: -1 is less than the minimum of 1" in message
    assert "datasets.demo.generation.shards: 0 is less than the minimum of 1" in message


def test_ablation_switches_accept_false():
    demo = validate_config(minimal(prune=False, textual_inversion=False))["datasets"]["demo"]
    assert demo["prune"]["enabled"] is False and demo["prune"]["thresholds"] == [1.0, 1.0]
    assert demo["textual_inversion"]["enabled"] is False and demo["textual_inversion"]["num_images"] == 30


def test_one_threshold_per_class_is_required():
    with pytest.raises(DDBError, match=r"datasets\.demo\.prune\.thresholds.*3 values.*2 classes"):
        validate_config(minimal(prune={"thresholds": [1, 1, 1]}))


def test_unknown_target_is_refused():
    config = minimal()
    config["targets"] = ["waterbirds"]
    with pytest.raises(DDBError, match="'waterbirds' is not a dataset of the config"):
        validate_config(config)


def test_class_pairs_are_every_ordered_pair():
    assert class_pairs(["a", "b"]) == [(0, 1), (1, 0)]
    assert len(class_pairs(["a", "b", "c"])) == 6
