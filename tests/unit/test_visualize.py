"""The report's step reads only the visualize rule's declared inputs (and the source images its manifest
lists), picks a tuned run's candidate from tune/selected.json among them, and its code version does not
follow the CLI's wording."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import REPO, run_paths, settings_of
from ddb.errors import DDBError
from ddb.paths import report_file
from ddb.storage.atomic import write_json, write_parquet
from ddb.storage.images import png_bytes
from ddb.storage.shards import write_image_shard

CLASSES = ["landbird", "waterbird"]
PAIRS = [("landbird", "waterbird"), ("waterbird", "landbird")]
SIZE = 16
# two tuning candidates whose thresholds keep different images; the second is the selected one
CANDIDATES = {"P0_0-g1_1": [0.0, 0.0], "P5_5-g1_1": [0.5, 0.5]}
SELECTED = "P5_5-g1_1"


def picture(seed: int, mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(seed)
    shape = (SIZE, SIZE, 3) if mode == "RGB" else (SIZE, SIZE)
    return png_bytes(rng.integers(0, 256, shape, dtype=np.uint8))


def box_mask() -> bytes:
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    mask[4:12, 4:12] = 255
    return png_bytes(mask)


def build_tuned_run(workdir):
    """A tuned run of two classes, four training sources each, with every artifact the visualize rule
    declares; returns (its RunPaths, the declared inputs by name)."""
    from ddb.models.classifier import build_classifier, save_classifier
    from ddb.pruning import prune
    from ddb.settings import PruneSettings

    paths = run_paths(workdir)
    rng = np.random.default_rng(0)
    sources = {cls: [f"train_{cls}{i}" for i in range(4)] for cls in CLASSES}
    rows = []
    for y, cls in enumerate(CLASSES):
        for i, sample_id in enumerate(sources[cls] + [f"test_{cls}"]):
            image = workdir / "images" / f"{sample_id}.png"
            image.parent.mkdir(parents=True, exist_ok=True)
            image.write_bytes(picture(10 * y + i))
            rows.append({"sample_id": sample_id, "path": str(image), "split": "train" if "train" in sample_id
                         else "test", "y": y, "class_name": cls, "spurious": "land", "group": f"{cls}_land"})
    write_parquet(pd.DataFrame(rows), paths.path("manifest"))
    save_classifier(build_classifier("tiny", 2, None, seed=0), paths.path("erm_model"), arch="tiny", classes=CLASSES,
                    image_size=SIZE)
    history = pd.DataFrame({"epoch": [1, 2], "loss": [0.7, 0.6], "loss_ce": [0.7, 0.6], "loss_gen_0": [0.5, 0.4],
                            "loss_gen_1": [0.5, 0.3], "val_worst_group_accuracy": [0.4, 0.5],
                            "val_mean_accuracy": [0.6, 0.7], "selected": [False, True]})
    write_parquet(history[["epoch", "loss", "val_worst_group_accuracy", "val_mean_accuracy"]], paths.path("erm_history"))
    for cls in CLASSES:
        write_parquet(pd.DataFrame({"step": [0, 1, 2], "loss": [0.3, 0.2, 0.1]}), paths.path("ti_loss", cls=cls))
    psi = pd.DataFrame({"class": [0, 1], "class_name": CLASSES, "k": [4, 4], "psi": [0.6, 0.6]})
    write_parquet(psi, paths.path("psi"))
    for cls in CLASSES:
        write_image_shard([(s, box_mask()) for s in sources[cls]], paths.path("mask_tar", src=cls, n=0),
                          pd.DataFrame({"sample_id": sources[cls], "area": 0.25, "detected": True}),
                          paths.path("mask_index", src=cls, n=0))
    for src, dst in PAIRS:
        ids = [f"{s}_to_{dst}" for s in sources[src]]
        write_image_shard([(g, picture(100 + i)) for i, g in enumerate(ids)],
                          paths.path("inpaint_tar", src=src, dst=dst, n=0),
                          pd.DataFrame({"sample_id": ids, "source_id": sources[src], "has_image": True,
                                        "y": CLASSES.index(dst), "prompt": f"a <{dst}>", "seed": 7}),
                          paths.path("inpaint_index", src=src, dst=dst, n=0))
        scores = pd.DataFrame({"sample_id": ids, "source_id": sources[src], "y": CLASSES.index(dst),
                               "source_y": CLASSES.index(src), "has_image": True, "rho": rng.uniform(0, 1, 4),
                               "p_source": rng.uniform(0, 0.5, 4), "p_target": rng.uniform(0.5, 1, 4)})
        write_parquet(scores, paths.path("ig_scores", src=src, dst=dst, n=0))
        for cand, thresholds in CANDIDATES.items():
            write_parquet(prune(scores, psi, PruneSettings(enabled=True, thresholds=thresholds)),
                          paths.path("tune_prune", cand=cand, src=src, dst=dst))
    for cand in CANDIDATES:
        write_parquet(history, paths.path("tune_history", cand=cand))
    write_json({"dataset": "demo", "selected": SELECTED, "rule": "best val WGA"}, paths.path("tune_selected"))
    metrics = {"worst_group_accuracy": 0.5, "mean_accuracy": 0.75, "weighted_mean_accuracy": 0.75,
               "group_accuracy": {"landbird_land": 1.0, "waterbird_land": 0.5}}
    write_json({"dataset": "demo", "erm": metrics, "ddb": metrics, "tune": {"selected": SELECTED}},
               paths.path("eval_json"))
    write_parquet(pd.DataFrame([{"model": m, "group": g, "accuracy": a, "n_test": 1, "n_train": 4,
                                 "worst_group": a == 0.5} for m in ("erm", "ddb")
                                for g, a in metrics["group_accuracy"].items()]), paths.path("eval_table"))
    inputs = {"manifest": paths.path("manifest"), "erm": paths.path("erm_model"), "erm_history": paths.path("erm_history"),
              "ti_loss": paths.glob("ti_loss"), "psi": paths.path("psi"), "masks": paths.glob("mask_tar"),
              "generated": paths.glob("inpaint_tar"), "generated_index": paths.glob("inpaint_index"),
              "scores": paths.glob("ig_scores"), "prune": paths.glob("tune_prune"),
              "retrain_history": paths.glob("tune_history"), "eval_json": paths.path("eval_json"),
              "eval_table": paths.path("eval_table"), "tune_selection": [paths.path("tune_selected")]}
    return paths, inputs


def visualize(inputs, out):
    from ddb.visualize import visualize_dataset

    return visualize_dataset(inputs, out, classes=CLASSES, pairs=PAIRS, image_size=SIZE, resolution=SIZE,
                             ig=settings_of("ig", n_steps=2, internal_batch_size=8), seed=0, rows_per_pair=4,
                             gallery_per_side=2)


def declared_files(inputs) -> set:
    from ddb.visualize import _paths

    return {path.resolve() for value in inputs.values() for path in _paths(value)}


@pytest.fixture
def recorded_reads(monkeypatch):
    """Every file the step opens through its readers: tables, JSON, shards, images, the model."""
    import ddb.models.classifier
    import ddb.tuning
    import ddb.visualize

    opened = []

    def recording(function):
        def read(path, *args, **kwargs):
            opened.append(Path(path).resolve())
            return function(path, *args, **kwargs)

        return read

    for module, name in ((ddb.visualize, "read_parquet"), (ddb.visualize, "read_json"), (ddb.visualize, "ImageShard"),
                         (ddb.visualize, "load_image"), (ddb.tuning, "read_json"),
                         (ddb.models.classifier, "load_classifier")):
        monkeypatch.setattr(module, name, recording(getattr(module, name)))
    return opened


def test_visualize_reads_only_its_declared_inputs_and_the_manifest_images(tmp_path, recorded_reads):
    paths, inputs = build_tuned_run(tmp_path)
    # undeclared files a search of the run folder would find: read, they would fail the step
    for decoy in (paths.path("prune", src="landbird", dst="waterbird"), paths.path("tune_candidates"),
                  paths.path("retrain_history"), paths.path("mask_tar", src="landbird", n=1)):
        decoy.parent.mkdir(parents=True, exist_ok=True)
        decoy.write_bytes(b"not what the step declared")
    out = tmp_path / "report"
    visualize(inputs, out)
    images = {Path(p).resolve() for p in pd.read_parquet(paths.path("manifest"))["path"]}
    opened = set(recorded_reads)
    assert opened - declared_files(inputs) - images == set()
    assert paths.path("erm_model").resolve() in opened and paths.path("tune_selected").resolve() in opened
    assert report_file(out, "report_pairs", pair="landbird_to_waterbird").is_file()


def test_a_tuned_run_shows_the_candidate_selected_json_names(tmp_path):
    from ddb.results.reader import prune_counts_of

    paths, inputs = build_tuned_run(tmp_path)
    out = tmp_path / "report"
    visualize(inputs, out)
    counts = {cand: prune_counts_of([(s, d, pd.read_parquet(paths.path("tune_prune", cand=cand, src=s, dst=d)))
                                     for s, d in PAIRS]) for cand in CANDIDATES}
    assert not counts[SELECTED]["kept"].equals(counts["P0_0-g1_1"]["kept"])  # the candidates differ
    shown = pd.read_csv(report_file(out, "report_prune_csv"))
    assert shown["kept"].tolist() == counts[SELECTED]["kept"].tolist()
    assert shown["pair"].tolist() == ["landbird_to_waterbird", "waterbird_to_landbird"]
    grid = pd.read_csv(report_file(out, "report_grid_samples"))
    verdicts = pd.concat([pd.read_parquet(paths.path("tune_prune", cand=SELECTED, src=s, dst=d)) for s, d in PAIRS])
    keep = dict(zip(verdicts["sample_id"], verdicts["keep"]))
    assert len(grid) and all(keep[row["sample_id"]] == row["keep"] for row in grid.to_dict("records"))


def test_a_selected_candidate_whose_tables_are_not_declared_is_one_error(tmp_path):
    paths, inputs = build_tuned_run(tmp_path)
    inputs["prune"] = [p for p in inputs["prune"] if SELECTED not in str(p)]
    with pytest.raises(DDBError, match=rf"no declared input for landbird_to_waterbird, waterbird_to_landbird of "
                                       rf"the selected candidate {SELECTED}"):
        visualize(inputs, tmp_path / "report")
    inputs = build_tuned_run(tmp_path / "again")[1]
    inputs["tune_selection"] = []  # every candidate's tables and nothing to choose among them: never the first
    with pytest.raises(DDBError, match=r"2 declared files are prune/landbird_to_waterbird\.parquet"):
        visualize(inputs, tmp_path / "report")


def test_the_cli_wording_is_not_part_of_the_report_code_version():
    from ddb.code_versions import import_closure

    closure = import_closure(REPO / "scripts" / "visualize.py")
    assert {"visualize.py", "results/reader.py", "results/schema.py", "results/tables.py"} <= set(closure)
    assert not [module for module in closure if module.startswith("presenters/") or module == "cli.py"], closure
