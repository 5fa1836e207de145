"""Every artifact is read through one error path (ddb.storage.reading): a damaged model, JSON record,
table or shard is one line naming the file and the rule that remakes it, in a job and in `ddb inspect`,
whose --verify reads a whole run back. The runs here are built by hand, a few files each (no DAG)."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import REPO, Params, Wildcards, fake_snakemake, run_paths

from ddb.cli import main as ddb
from ddb.storage.atomic import write_json, write_parquet
from ddb.storage.images import png_bytes
from ddb.storage.shards import write_image_shard

CLASSES = ["landbird", "waterbird"]


class Files(Params):
    """What Snakemake gives a script as ``snakemake.input`` / ``output``: a list with names and ``get``."""

    def __init__(self, **named):
        super().__init__(**named)
        self[:] = [f for v in named.values() for f in (v if isinstance(v, list) else [v])]

    def get(self, key, default=None):
        return self.__dict__.get(key, default)


def truncate(path: Path) -> None:
    """Cut ``path`` short, as a full disk or a killed copy leaves it: a shard tar within its second PNG
    (its second half is the zero padding of a whole tar)."""
    data = path.read_bytes()
    path.write_bytes(data[: 3 * 512 + 100 if path.suffix == ".tar" else len(data) // 2])


def terminal_lines(capfd) -> list[str]:
    return [line for line in capfd.readouterr().err.splitlines() if line.strip()]


def image(value: int) -> bytes:
    return png_bytes(np.full((8, 8, 3), value, dtype=np.uint8))


def build_run(workdir: Path):
    """A run of two classes with its manifest, one mask shard and one inpaint shard of landbird."""
    paths = run_paths(workdir)
    sources = [f"train0000{i}" for i in range(3)]
    manifest = pd.DataFrame({"sample_id": sources + ["test00000"], "path": [f"img/{s}.png" for s in sources + ["t"]],
                             "split": ["train"] * 3 + ["test"], "y": [0, 0, 1, 0],
                             "class_name": ["landbird", "landbird", "waterbird", "landbird"],
                             "spurious": ["land", "water", "water", "land"],
                             "group": ["landbird_land", "landbird_water", "waterbird_water", "landbird_land"]})
    write_parquet(manifest, paths.path("manifest"))
    landbirds = sources[:2]
    write_image_shard([(s, image(i)) for i, s in enumerate(landbirds)], paths.path("mask_tar", src="landbird", n=0),
                      pd.DataFrame({"sample_id": landbirds, "area": [0.2, 0.3], "detected": [True, True],
                                    "box": [[1.0, 1.0, 5.0, 5.0]] * 2}),
                      paths.path("mask_index", src="landbird", n=0))
    generated = [f"{s}_to_waterbird" for s in landbirds]
    write_image_shard([(g, image(100 + i)) for i, g in enumerate(generated)],
                      paths.path("inpaint_tar", src="landbird", dst="waterbird", n=0),
                      pd.DataFrame({"sample_id": generated, "source_id": landbirds, "has_image": [True, True],
                                    "y": [1, 1], "prompt": ["a <waterbird>"] * 2, "seed": [7, 8]}),
                      paths.path("inpaint_index", src="landbird", dst="waterbird", n=0))
    return paths


# ---- a rule script reading a damaged artifact


def test_a_truncated_model_read_by_evaluate_is_one_line_naming_it_and_its_rule(tmp_path, capfd, in_process_step):
    from ddb.models.classifier import build_classifier, save_classifier

    paths = build_run(tmp_path)
    model = paths.path("erm_model")
    save_classifier(build_classifier("tiny", 2, None, seed=0), model, arch="tiny", classes=CLASSES, image_size=8)
    truncate(model)
    snakemake = fake_snakemake(tmp_path, "evaluate", params=Params(cfg={}),
                               input=Files(manifest=str(paths.path("manifest")), erm=str(model)))
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(REPO / "scripts" / "evaluate.py"), init_globals={"snakemake": snakemake})
    assert exit_.value.code == 1
    lines = terminal_lines(capfd)
    assert lines[0].startswith(f"ddb: {model}: not a readable checkpoint, truncated or corrupt (")
    assert lines[1] == "  fix: delete it and rerun snakemake: rule train_erm remakes it (and what depends on it)"
    assert len(lines) == 3 and "Traceback" not in capfd.readouterr().err


def test_a_truncated_eval_json_read_by_seed_summary_is_one_line_naming_it_and_its_rule(tmp_path, capfd,
                                                                                         in_process_step):
    evals = [run_paths(tmp_path).path("eval_json"), run_paths(tmp_path, "demo/seed-1").path("eval_json")]
    for path in evals:
        write_json({"erm": {"worst_group_accuracy": 0.5}}, path)
    truncate(evals[1])
    summary = run_paths(tmp_path).path("seed_summary")
    snakemake = fake_snakemake(tmp_path, "seed_summary", params=Params(seeds=[0, 1]),
                               input=Files(evals=[str(p) for p in evals]), wildcards=Wildcards(ds="demo"),
                               output=Files(json=str(summary), table=str(summary.with_suffix(".parquet"))))
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(REPO / "scripts" / "seed_summary.py"), init_globals={"snakemake": snakemake})
    assert exit_.value.code == 1
    lines = terminal_lines(capfd)
    assert lines[0].startswith(f"ddb: {evals[1]}: not readable JSON, truncated or corrupt (")
    assert lines[1] == "  fix: delete it and rerun snakemake: rule evaluate remakes it (and what depends on it)"
    assert not summary.exists()


def test_a_checkpoint_pickling_a_whole_object_is_still_refused_as_such(tmp_path):
    import pickle

    import torch

    from ddb.storage.reading import load_checkpoint

    path = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_checkpoint(path)


# ---- ddb inspect on damaged artifacts


def test_inspect_on_a_truncated_shard_names_it_with_no_traceback(tmp_path, capsys):
    paths = build_run(tmp_path)
    tar = paths.path("inpaint_tar", src="landbird", dst="waterbird", n=0)
    truncate(tar)
    root = str(paths.root)
    for args in (["--step", "inpaint"], ["--sample", "train00000"], ["--sample", "train00001_to_waterbird"]):
        assert ddb(["inspect", root, *args]) == 1, args
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"ddb: {tar}: not a readable tar, truncated or corrupt (unexpected end of "
                              "data)") and "Traceback" not in err, (args, err)
        assert err.endswith("(fix: delete it and rerun snakemake: rule inpaint remakes it (and what depends on it))")
    assert ddb(["inspect", root]) == 1  # the overview: the inpaint line says why, the others are shown
    out = capsys.readouterr().out
    inpaint = next(line for line in out.splitlines() if line.startswith("inpaint"))
    assert "unreadable: inpaint/landbird_to_waterbird/shard-0.tar: not a readable tar" in inpaint
    assert "landbird 2/2" in out  # the mask line is still there


def test_inspect_on_a_truncated_manifest_shows_the_other_steps(tmp_path, capsys):
    paths = build_run(tmp_path)
    truncate(paths.path("manifest"))
    assert ddb(["inspect", str(paths.root)]) == 1
    out = capsys.readouterr().out
    data = next(line for line in out.splitlines() if line.startswith("prepare_dataset"))
    assert "unreadable: data/manifest.parquet: not a readable Parquet table" in data
    assert "landbird 2/2" in out  # the mask step, its classes found from its folders


def test_inspect_on_a_truncated_shard_index_names_it(tmp_path, capsys):
    paths = build_run(tmp_path)
    index = paths.path("inpaint_index", src="landbird", dst="waterbird", n=0)
    truncate(index)
    for args in (["--step", "inpaint"], ["--sample", "train00000"]):
        assert ddb(["inspect", str(paths.root), *args]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"ddb: {index}: not a readable Parquet table") and "Traceback" not in err


def test_an_intact_run_exits_0_and_an_unreadable_summary_json_is_shown_not_dropped(tmp_path, capsys):
    paths = build_run(tmp_path)
    assert ddb(["inspect", str(paths.root), "--sample", "train00000"]) == 0
    assert "train00000_to_waterbird.png · label waterbird" in capsys.readouterr().out
    assert ddb(["inspect", str(paths.root)]) == 0
    capsys.readouterr()
    paths.path("seed_summary").write_text('{"dataset": "demo", "seeds": [0, 1], "meth')
    assert ddb(["inspect", str(paths.root)]) == 1
    out = capsys.readouterr().out
    assert "seed summary unreadable: summary.json: not readable JSON, truncated or corrupt" in out
    assert ddb(["inspect", str(paths.root), "--json"]) == 1
    assert "not readable JSON" in json.loads(capsys.readouterr().out)["seed_summary"]["unreadable"]


def test_verify_lists_exactly_the_damaged_artifacts_models_and_candidates_included(tmp_path, capsys):
    import torch

    from safetensors.numpy import save_file

    from ddb.storage.atomic import save_torch, write_png

    paths = build_run(tmp_path)
    state = {"state_dict": {"w": torch.zeros(3)}}
    save_torch(state, paths.path("erm_model"))
    write_json({"erm": {"worst_group_accuracy": 0.5}}, paths.path("eval_json"))
    write_parquet(pd.DataFrame({"candidate": ["a", "b"], "selected": [True, False]}), paths.path("tune_candidates"))
    write_json({"selected": "a", "candidates": ["a", "b"]}, paths.path("tune_selected"))
    for cand in ("a", "b"):
        save_torch(state, paths.path("tune_model", cand=cand))
        write_parquet(pd.DataFrame({"epoch": [0, 1]}), paths.path("tune_history", cand=cand))
    write_png(np.zeros((4, 4), dtype=np.uint8), paths.path("report_retrain_curves"))
    embeds = paths.path("ti_embeds", cls="waterbird")
    embeds.parent.mkdir(parents=True)
    save_file({"<waterbird>": np.zeros((1, 32), np.float32)}, str(embeds))
    root = str(paths.root)
    assert ddb(["inspect", root, "--verify"]) == 0
    assert capsys.readouterr().out.strip() == f"{root}: all 15 artifact(s) read back whole"

    damaged = [paths.path("erm_model"), paths.path("tune_model", cand="b"),  # b: not the selected candidate
               paths.path("inpaint_tar", src="landbird", dst="waterbird", n=0), paths.path("eval_json"),
               paths.path("report_retrain_curves"), embeds]
    for path in damaged:
        truncate(path)
    assert ddb(["inspect", root, "--verify", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["read"] == 15
    listed = sorted(d["artifact"] for d in report["damaged"])
    assert listed == sorted(p.relative_to(paths.root).as_posix() for p in damaged)
    fixes = {d["artifact"]: d["fix"] for d in report["damaged"]}
    assert fixes["erm/model.pt"] == "delete it and rerun snakemake: rule train_erm remakes it (and what depends on it)"
    assert fixes["textual_inversion/waterbird/learned_embeds.safetensors"] == (
        "delete it and rerun snakemake: rule textual_inversion remakes it (and what depends on it)")
    assert fixes["tune/b/retrain/model.pt"] == (
        "delete it and rerun snakemake: rule tune_retrain remakes it (and what depends on it)")
    assert fixes["eval.json"] == "delete it and rerun snakemake: rule evaluate remakes it (and what depends on it)"
    assert ddb(["inspect", root, "--verify"]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{root}: 6 of 15 artifact(s) cannot be read:\n  erm/model.pt: not a readable checkpoint")


def test_leftover_candidates_and_seed_folders_are_listed_not_deleted(tmp_path, capsys):
    paths = build_run(tmp_path)
    write_parquet(pd.DataFrame({"candidate": ["a", "b"], "selected": [True, False]}), paths.path("tune_candidates"))
    for cand in ("a", "b", "old"):
        paths.path("tune_candidate_dir", cand=cand).mkdir(parents=True)
    write_json({"dataset": "demo", "seeds": [0, 1], "methods": {}}, paths.path("seed_summary"))
    for seed in (1, 2):
        (paths.root / f"seed-{seed}" / "data").mkdir(parents=True)
    ddb(["inspect", str(paths.root)])
    out = capsys.readouterr().out
    listed = out[out.index("not part of the current config"):].splitlines()[1:]
    assert listed == ["  tune/old/: a tuning candidate not in tune/candidates.parquet (the config's `tune`)",
                      "  seed-2/: seed 2 is not among the seeds of summary.json [0, 1]"]
    assert paths.path("tune_candidate_dir", cand="old").is_dir() and (paths.root / "seed-2").is_dir()
    ddb(["inspect", str(paths.root), "--json"])
    assert [e["folder"] for e in json.loads(capsys.readouterr().out)["not_in_config"]] == ["tune/old", "seed-2"]
