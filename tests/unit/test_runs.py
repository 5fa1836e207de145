"""ddb.runs: the runs of a config (one per dataset and seed), the `ds` patterns of the rules, the wildcard
constraints, and a dataset entry's class pairs and shards."""

from __future__ import annotations

import re

from ddb.runs import NO_RUN, Runs, pairs_of, shards_of, source_classes


def entry(classes, **extra) -> dict:
    return {"classes": classes, **extra}


def config(seeds, seed=0) -> dict:
    return {"seed": seed, "seeds": seeds,
            "datasets": {"demo": entry(["landbird", "waterbird"]), "celeba": entry(["non_blond", "blond"])}}


def test_one_run_per_dataset_and_seed_the_config_seed_in_the_datasets_own_folder():
    cfg = config([0, 1, 2])
    runs = Runs(cfg)
    assert runs.seeds == [0, 1, 2]
    assert runs.seed_of == {"demo": 0, "demo/seed-1": 1, "demo/seed-2": 2,
                            "celeba": 0, "celeba/seed-1": 1, "celeba/seed-2": 2}
    assert runs.dataset_of["celeba/seed-2"] == "celeba" and runs.dataset_of["demo"] == "demo"
    assert runs.entries["demo/seed-1"] is cfg["datasets"]["demo"]
    assert runs.runs_of("celeba") == ["celeba", "celeba/seed-1", "celeba/seed-2"]
    assert runs.classes == ["blond", "landbird", "non_blond", "waterbird"]


def test_without_seeds_one_run_per_dataset():
    runs = Runs(config([], seed=7))
    assert runs.seeds == [7]
    assert runs.seed_of == {"demo": 7, "celeba": 7}
    assert runs.base_pattern == "demo|celeba"
    assert runs.seed_pattern == NO_RUN
    assert not any(re.fullmatch(NO_RUN, text) for text in ("", "demo", "demo/seed-1"))


def test_the_patterns_of_the_datasets_runs_and_the_other_seeds_runs():
    runs = Runs(config([1, 2]))  # the config's seed 0 is none of them: every run is a seed folder
    assert list(runs.seed_of) == ["demo/seed-1", "demo/seed-2", "celeba/seed-1", "celeba/seed-2"]
    assert runs.base_pattern == "demo|celeba"  # prepare_dataset still draws into the dataset's folder
    assert runs.seed_pattern == r"demo/seed\-1|demo/seed\-2|celeba/seed\-1|celeba/seed\-2"


def test_wildcard_constraints_match_whole_runs_classes_and_shards():
    constraints = Runs(config([0, 1])).wildcard_constraints()
    assert constraints == {"ds": r"celeba/seed\-1|demo/seed\-1|celeba|demo",
                           "cls": "blond|landbird|non_blond|waterbird",
                           "src": "blond|landbird|non_blond|waterbird",
                           "dst": "blond|landbird|non_blond|waterbird", "n": r"\d+"}
    # Snakemake matches a path's wildcard with the first alternative that lets the rest match: the longer
    # runs come first, so results/demo/seed-1/eval.json is run demo/seed-1
    match = re.match(rf"results/(?P<ds>{constraints['ds']})/(?P<rest>.+)", "results/demo/seed-1/eval.json")
    assert match["ds"] == "demo/seed-1"


def test_pairs_sources_and_shards_of_an_entry():
    three = entry(["a", "b", "c"])
    assert pairs_of(three) == [("a", "b"), ("a", "c"), ("b", "a"), ("b", "c"), ("c", "a"), ("c", "b")]
    assert source_classes(three) == ["a", "b", "c"]
    generation = {"images_per_shard": 3, "sources": "all", "max_sources_per_class": 7, "per_source": 1}
    birds = entry(["landbird", "waterbird"], format="waterbirds", generation=generation)
    # at most 7 sources of landbird, each generated once: 3 shards of at most 3 images
    assert shards_of(birds, "landbird") == range(3)
    generation.update(per_source=3, images_per_shard=7)  # 2 sources a shard, their 3 images each together
    assert shards_of(birds, "waterbird") == range(4)
