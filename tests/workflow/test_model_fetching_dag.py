"""Model fetching in the DAG: each hub model is fetched once, before the jobs that load it, and a refetched
model reruns nothing."""

from __future__ import annotations

import json
import re

import torch

from helpers import REPO, SMALL_DEMO, run_snakemake, small_config, write_config
from test_models_fetching import COMMIT, SD2_INPAINTING


def hub_config() -> dict:
    """Two datasets: `hub` loads every kind of hub model (one id twice), `demo` only tiny, random:, ddb: ones."""
    config = small_config()
    config["datasets"]["hub"] = {
        **SMALL_DEMO, "classifier": {"arch": "resnet50", "weights": "IMAGENET1K_V1", "image_size": 32},
        "textual_inversion": {**SMALL_DEMO["textual_inversion"], "model": SD2_INPAINTING},
        "inpainting": {**SMALL_DEMO["inpainting"], "model": SD2_INPAINTING},
        "masking": {"masker": "grounded_sam", "detector": "IDEA-Research/grounding-dino-base",
                    "segmenter": f"facebook/sam-vit-huge@{COMMIT}"}}
    config["datasets"]["demo"]["inpainting"] = {**SMALL_DEMO["inpainting"], "model": f"random:{SD2_INPAINTING}"}
    config["datasets"]["demo"]["classifier"] = {"arch": "resnet50", "weights": "random:resnet50", "image_size": 32}
    config["targets"] = ["demo", "hub"]
    return config


def test_the_dag_fetches_each_hub_model_once_before_the_jobs_that_load_it(tmp_path):
    write_config(tmp_path, hub_config())
    out = run_snakemake(tmp_path, "-n").stdout
    jobs = re.split(r"\n(?=(?:local)?rule \w+:)", out)
    fetched = sorted(re.search(r"output: (\S+)", job)[1] for job in jobs if re.match(r"(local)?rule fetch_model:", job))
    assert fetched == ["results/models/IDEA-Research--grounding-dino-base.json",
                       f"results/models/facebook--sam-vit-huge@{COMMIT}.json",
                       "results/models/sd2-community--stable-diffusion-2-inpainting.json",
                       "results/models/torchvision--resnet50.IMAGENET1K_V1.json"]
    # run by the snakemake process itself, on the login node (a local run prints no `localrule` mark)
    assert re.search(r"^localrules:.*\bfetch_model\b", (REPO / "Snakefile").read_text(), re.MULTILINE)

    def inputs(rule, ds):
        return [set(re.search(r"input: (.*)", job)[1].split(", ")) for job in jobs
                if re.match(rf"(local)?rule {rule}:", job) and f"results/{ds}/" in job]

    records = {name: f"results/models/{name}.json" for name in (
        "IDEA-Research--grounding-dino-base", f"facebook--sam-vit-huge@{COMMIT}",
        "sd2-community--stable-diffusion-2-inpainting", "torchvision--resnet50.IMAGENET1K_V1")}
    for rule, needed in (("mask", [records["IDEA-Research--grounding-dino-base"],
                                   records[f"facebook--sam-vit-huge@{COMMIT}"]]),
                         ("inpaint", [records["sd2-community--stable-diffusion-2-inpainting"]]),
                         ("textual_inversion", [records["sd2-community--stable-diffusion-2-inpainting"]]),
                         ("train_erm", [records["torchvision--resnet50.IMAGENET1K_V1"]])):
        assert inputs(rule, "hub") and all(set(needed) <= job for job in inputs(rule, "hub")), rule
        assert inputs(rule, "demo") and not any("results/models/" in " ".join(job) for job in inputs(rule, "demo"))
    assert not any("results/models/" in " ".join(job) for job in inputs("ig_score", "hub"))


def test_a_refetched_model_reruns_nothing_that_loads_it(tmp_path, monkeypatch):
    """A real train_erm on torchvision weights that are in the torch cache (no network): forcing fetch_model
    again writes the same record, and Snakemake then has nothing to redo."""
    import torchvision

    torch_home = tmp_path / "torch"
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    (torch_home / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(torchvision.models.resnet18().state_dict(), torch_home / "hub" / "checkpoints" / url.rsplit("/", 1)[1])
    workdir = tmp_path / "run"
    workdir.mkdir()
    config = small_config(classifier={"arch": "resnet18", "weights": "IMAGENET1K_V1", "image_size": 32},
                          erm={**SMALL_DEMO["erm"], "epochs": 1})
    write_config(workdir, config)
    model, record = "results/demo/erm/model.pt", "results/models/torchvision--resnet18.IMAGENET1K_V1.json"
    run_snakemake(workdir, "--cores", "1", model)
    first = (workdir / record).read_bytes()
    assert json.loads(first)["cache_dir"] == str(torch_home / "hub" / "checkpoints")
    assert "nothing to download" in (workdir / "results/logs/fetch_model/torchvision--resnet18.IMAGENET1K_V1.log"
                                     ).read_text()
    written = (workdir / record).stat().st_mtime_ns
    # `--` ends --forcerun's list of rules: without it the record is read as one and the whole DAG runs
    run_snakemake(workdir, "--cores", "1", "--forcerun", "fetch_model", "--", record)
    assert (workdir / record).stat().st_mtime_ns > written  # rewritten, newer than the model that loads it
    assert (workdir / record).read_bytes() == first
    dry = run_snakemake(workdir, "-n", model)
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-2000:]
