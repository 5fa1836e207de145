"""Mixed precision on the demo: bf16 autocast against float32 for the classifier's steps, on a CPU.

    python benchmarks/precision.py                  # runs (or reuses) the float32 demo in results/precision/fp32
    python benchmarks/precision.py --end-to-end     # also the whole demo with classifier.precision: bf16
    python benchmarks/precision.py --workdir DIR    # compare against another finished demo run

Part 1, fixed models: with the float32 run's ERM and DDB models and its generated images, everything the
classifier computes is computed again under bf16 autocast (ddb.precision; CPU autocast supports bf16), and
compared with the float32 run's artifacts: the per-sample losses, the K lowest per class (D_i) and Ψ; IG's ρ
and the softmax of every generated image; the prune verdicts drawn from those; the test predictions and
accuracies of ERM and DDB. A verdict that flips is listed with its margin (how far float32 was from the
threshold it crossed).

Part 2, --end-to-end: a copy of the float32 run with `classifier.precision: bf16`, so ERM and retraining
also train in bf16 (Snakemake reruns exactly the steps that read `classifier`); its verdicts and eval.json
against float32's. Training amplifies any rounding difference, so this shows what a whole bf16 run changes.

The demo uses the GPU defaults nowhere: on a CPU `precision: auto` is float32, so the demo's own numbers do
not depend on this. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from ddb.paths import RunPaths, artifact_path  # noqa: E402


def run_demo(workdir: Path, cores: int, changes: dict | None = None, start_from: Path | None = None) -> float:
    """The repo's demo in ``workdir`` (a copy of ``start_from`` if given, so only changed steps rerun)."""
    if start_from is not None and not workdir.exists():
        shutil.copytree(start_from, workdir, symlinks=True)  # keeps mtimes and Snakemake's metadata
    workdir.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    demo = copy.deepcopy(config["datasets"]["demo"])
    for section, values in (changes or {}).items():
        demo[section] = {**demo.get(section, {}), **values}
    config.update(targets=["demo"], datasets={"demo": demo})
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    start = time.time()
    result = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                             str(workdir), "--cores", str(cores), "--rerun-incomplete",
                             artifact_path("results", "demo", "eval_json").as_posix()],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{workdir}: snakemake failed\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return time.time() - start


def pairs(cfg: dict) -> list[tuple[str, str]]:
    from ddb.config import class_pairs

    names = cfg["classes"]
    return [(names[i], names[j]) for i, j in class_pairs(names)]


def ddb_candidates(results: RunPaths, cfg: dict) -> tuple[list[tuple[str | None, list[float]]], Path]:
    """(tuning candidate, thresholds) of every DDB candidate, and the DDB model evaluate read: with a
    `tune` section (rules/tune.smk) each candidate and the selected one's model, else (None, the entry's P)
    and the plain retrain model."""
    import pandas as pd

    selected = results.path("tune_selected")
    if not selected.exists():
        return [(None, cfg["prune"]["thresholds"])], results.path("retrain_model")
    table = pd.read_parquet(results.path("tune_candidates"))
    candidates = [(row["candidate"], list(row["thresholds"])) for row in table.to_dict("records")]
    return candidates, results.ddb_path("retrain_model", json.loads(selected.read_text())["selected"])


def fixed_model_comparison(workdir: Path) -> None:
    import numpy as np
    import pandas as pd
    import torch

    from ddb.config import validate_config
    from ddb.datasets.loading import ImageDataset
    from ddb.ig_scoring import score_shard
    from ddb.settings import IgSettings, PruneSettings
    from ddb.storage.shards import ImageShard
    from ddb.storage.reading import read_parquet
    from ddb.low_loss import mean_softmax, per_sample_losses, select_low_loss
    from ddb.models.classifier import eval_transform, load_classifier
    from ddb.precision import FP32, Precision
    from ddb.pruning import prune
    from ddb.training import predict_logits

    os.chdir(workdir)  # the manifest's paths are relative to the run's working directory
    workdir = Path(".")
    results = RunPaths(workdir / "results" / "demo")
    cfg = validate_config(yaml.safe_load((workdir / "config.yaml").read_text()))["datasets"]["demo"]
    # the thread count of the demo's jobs (resources.max.threads): float sums split by thread
    torch.set_num_threads(max(1, min(cfg["resources"]["max"].get("threads", 2), os.cpu_count() or 1)))
    bf16 = Precision("cpu", torch.bfloat16)
    size, recipe = cfg["classifier"]["image_size"], cfg["classifier"]["transform"]
    manifest = read_parquet(results.path("manifest"))
    candidates, ddb_model = ddb_candidates(results, cfg)
    erm, _ = load_classifier(results.path("erm_model"))
    ddb, _ = load_classifier(ddb_model)
    print(f"Part 1: the float32 run's models and images, recomputed under bf16 autocast ({Path.cwd()}; "
          f"torch threads {torch.get_num_threads()})\n")

    # ---- select_low_loss and mean_softmax
    tables, same_sets = {}, []
    print(f"{'low loss':<12}{'K':>5}{'same D_i':>10}{'max |Δloss|':>13}{'max |Δsoftmax|':>16}")
    for y, name in enumerate(cfg["classes"]):
        rows = manifest[(manifest["split"] == "train") & (manifest["y"] == y)]
        k = cfg["low_loss"]["k"][y]
        reference = read_parquet(results.path("low_loss", cls=name))
        losses = per_sample_losses(erm, rows, size, cfg["low_loss"]["batch_size"], "cpu", recipe, bf16)
        fp32 = per_sample_losses(erm, rows, size, cfg["low_loss"]["batch_size"], "cpu", recipe, FP32)
        tables[y] = select_low_loss(losses, k)
        both = fp32.merge(losses, on="sample_id", suffixes=("_fp32", "_bf16"))
        overlap = len(set(tables[y]["sample_id"]) & set(reference["sample_id"]))
        same_sets.append(overlap == len(reference))
        print(f"{name:<12}{k:>5}{f'{overlap}/{len(reference)}':>10}"
              f"{np.abs(both['loss_fp32'] - both['loss_bf16']).max():>13.2e}"
              f"{np.abs(both['softmax_fp32'] - both['softmax_bf16']).max():>16.2e}")
        swapped = set(tables[y]["sample_id"]) ^ set(reference["sample_id"])
        if swapped:  # how close to the K-th loss they were
            kth = float(reference["loss"].max())
            rows_swapped = both[both["sample_id"].isin(swapped)]
            print("  swapped at the K boundary (float32 K-th loss " f"{kth:.6f}): " + ", ".join(
                f"{r['sample_id']} (loss {r['loss_fp32']:.6f} / {r['loss_bf16']:.6f})"
                for r in rows_swapped.to_dict("records")))
    psi = mean_softmax(tables, cfg["classes"])
    psi_fp32 = read_parquet(results.path("psi"))
    print("Ψ float32 " + ", ".join(f"{v:.5f}" for v in psi_fp32["psi"]) + "   bf16 "
          + ", ".join(f"{v:.5f}" for v in psi["psi"]) + "\n")

    # ---- ig_score and prune
    sources = dict(zip(manifest["sample_id"], manifest["path"]))
    print(f"{'pair (thresholds P)':<34}{'images':>7}{'max |Δρ|':>10}{'max |ρ|':>9}{'max |Δp_src|':>14}"
          f"{'kept fp32':>11}{'kept bf16':>11}{'flipped':>9}")
    flips, scored = [], {}
    for (src, dst), (candidate, thresholds) in [(p, c) for c in candidates for p in pairs(cfg)]:
        pair = f"{src}_to_{dst}"
        if pair not in scored:  # IG once per pair, whatever the candidates' thresholds
            scores, reference = [], []
            for found, ig_path in results.find("ig_scores", src=src, dst=dst):
                shard = {"src": src, "dst": dst, "n": found["n"]}
                index = read_parquet(results.path("inpaint_index", **shard))
                scores.append(score_shard(erm, index, ImageShard(results.path("inpaint_tar", **shard)),
                                          ImageShard(results.path("mask_tar", src=src, n=found["n"])), sources,
                                          image_size=size, ig=IgSettings(**cfg["ig"]), device="cpu", transform=recipe,
                                          precision=bf16))
                reference.append(read_parquet(ig_path))
            scored[pair] = pd.concat(scores, ignore_index=True), pd.concat(reference, ignore_index=True)
        scores, reference = scored[pair]
        both = reference.merge(scores, on="sample_id", suffixes=("_fp32", "_bf16"))
        both = both[both["has_image_fp32"]]
        d_rho = np.abs(both["rho_fp32"] - both["rho_bf16"])
        verdicts = prune(scores, psi, PruneSettings(enabled=cfg["prune"]["enabled"], thresholds=thresholds))
        verdicts_fp32 = read_parquet(results.ddb_path("prune", candidate, src=src, dst=dst))
        joined = verdicts_fp32.merge(verdicts, on="sample_id", suffixes=("_fp32", "_bf16"))
        flipped = joined[(joined["keep_fp32"] != joined["keep_bf16"])
                         | (joined["reason_fp32"] != joined["reason_bf16"])]
        flips += [(pair, row) for row in flipped.to_dict("records")]
        label = f"{pair} ({', '.join(f'{t:g}' for t in thresholds)})"
        print(f"{label:<34}{len(both):>7}{d_rho.max():>10.2e}{np.abs(both['rho_fp32']).max():>9.2f}"
              f"{np.abs(both['p_source_fp32'] - both['p_source_bf16']).max():>14.2e}"
              f"{int(verdicts_fp32['keep'].sum()):>11}{int(verdicts['keep'].sum()):>11}{len(flipped):>9}")
    for pair, row in flips:
        print(f"  flipped {pair} {row['sample_id']}: {row['reason_fp32']} -> {row['reason_bf16']} "
              f"(ρ {row['rho_fp32']:.4f} / {row['rho_bf16']:.4f} vs threshold {row['threshold_fp32']:g}; "
              f"p_source {row['p_source_fp32']:.4f} / {row['p_source_bf16']:.4f} vs Ψ {row['psi_source_fp32']:.4f} "
              f"/ {row['psi_source_bf16']:.4f})")
    print()

    # ---- evaluate
    report = json.loads(results.path("eval_json").read_text())
    test = manifest[manifest["split"] == "test"]
    dataset = ImageDataset.from_manifest(test, eval_transform(size, recipe))
    print(f"{'test':<6}{'WGA fp32':>10}{'WGA bf16':>10}{'mean fp32':>11}{'mean bf16':>11}{'predictions changed':>21}")
    from ddb.metrics import group_accuracies, summarize

    for name, model in (("erm", erm), ("ddb", ddb)):
        logits = predict_logits(model, dataset, cfg["retrain"]["batch_size"], "cpu", precision=bf16)
        logits_fp32 = predict_logits(model, dataset, cfg["retrain"]["batch_size"], "cpu")
        correct = logits.argmax(1).numpy() == test["y"].to_numpy()
        metrics = summarize(group_accuracies(test["group"].to_numpy(), correct))
        changed = int((logits.argmax(1) != logits_fp32.argmax(1)).sum())
        print(f"{name:<6}{report[name]['worst_group_accuracy']:>10.4f}{metrics['worst_group_accuracy']:>10.4f}"
              f"{report[name]['mean_accuracy']:>11.4f}{metrics['mean_accuracy']:>11.4f}"
              f"{f'{changed} of {len(test)}':>21}")
    print(f"\nsame D_i for every class: {all(same_sets)}; prune verdicts flipped: {len(flips)}\n")


def end_to_end(fp32: Path, bf16: Path, cores: int) -> None:
    import pandas as pd

    seconds = run_demo(bf16, cores, {"classifier": {"precision": "bf16"}}, start_from=fp32)
    print(f"Part 2: the demo with classifier.precision: bf16 (ERM, low loss, IG, retraining, evaluation; "
          f"{seconds:.0f} s), against float32\n")
    runs = {"fp32": RunPaths(fp32 / "results" / "demo"), "bf16": RunPaths(bf16 / "results" / "demo")}
    reports = {name: json.loads(run.path("eval_json").read_text()) for name, run in runs.items()}
    print(f"{'model':<6}{'WGA fp32':>10}{'WGA bf16':>10}{'mean fp32':>11}{'mean bf16':>11}")
    for model in ("erm", "ddb"):
        print(f"{model:<6}{reports['fp32'][model]['worst_group_accuracy']:>10.4f}"
              f"{reports['bf16'][model]['worst_group_accuracy']:>10.4f}"
              f"{reports['fp32'][model]['mean_accuracy']:>11.4f}{reports['bf16'][model]['mean_accuracy']:>11.4f}")
    selected = {name: json.loads(run.path("tune_selected").read_text())["selected"] for name, run in runs.items()
                if run.path("tune_selected").exists()}
    if selected:
        print(f"tuned DDB candidate selected: {selected.get('fp32')} (fp32), {selected.get('bf16')} (bf16)")
    # the plain prune tables, or every tuned candidate's (rules/tune.smk)
    for path in runs["fp32"].glob("prune") + runs["fp32"].glob("tune_prune"):
        relative = path.relative_to(runs["fp32"].root)
        a, b = pd.read_parquet(path), pd.read_parquet(runs["bf16"].root / relative)
        joined = a.merge(b, on="sample_id", suffixes=("_fp32", "_bf16"))
        print(f"{str(relative.with_suffix('')):<45} kept {int(a['keep'].sum())} (fp32) / {int(b['keep'].sum())} "
              f"(bf16) of {len(a)}, {int((joined['keep_fp32'] != joined['keep_bf16']).sum())} verdicts differ")


def gpu_timing(batch: int = 64, repeats: int = 10, device_name: str = "cuda", ig_steps: int = 50) -> None:
    """ResNet-50 (random weights, 224 px) on the CUDA device: images/s of a training step, of prediction and
    of IG (50 steps) for each setting of ddb.precision, and how far bf16 logits are from float32's."""
    import torch

    from ddb.ig_scoring import attribute
    from ddb.models.classifier import build_classifier
    from ddb.precision import Precision, classifier_precision

    cuda = device_name == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--gpu needs a CUDA device")
    device = torch.device(device_name)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    card = torch.cuda.get_device_name(0) if cuda else "cpu"
    print(f"ResNet-50 on {card} (torch {torch.__version__}), batch {batch}, 224 px; "
          f"precision auto here: {classifier_precision({}, device).describe()}\n")
    settings = {"fp32 (no TF32)": ({"precision": "fp32", "channels_last": False, "tf32": False}, False),
                "fp32 + TF32": ({"precision": "fp32", "channels_last": False}, True),
                "fp32 + TF32, channels-last": ({"precision": "fp32", "channels_last": True}, True),
                "bf16, channels-last (auto)": ({"precision": "auto"}, True),
                "fp16 + GradScaler, channels-last": ({"precision": "fp16"}, True)}
    x = torch.randn(batch, 3, 224, 224, device=device)
    y = torch.randint(0, 2, (batch,), device=device)
    reference = None
    print(f"{'setting':<34}{'train img/s':>12}{'predict img/s':>15}{'IG img/s':>10}{'max |Δlogit|':>14}"
          f"{'peak MiB':>10}")

    def timed(function, count):
        function()
        sync()
        start = time.perf_counter()
        for _ in range(count):
            function()
        sync()
        return (time.perf_counter() - start) / count

    for name, (cfg, tf32) in settings.items():
        torch.backends.cuda.matmul.fp32_precision = "tf32" if tf32 else "ieee"
        torch.backends.cudnn.conv.fp32_precision = "tf32" if tf32 else "ieee"
        precision = classifier_precision(cfg, device) if tf32 else Precision(device.type, None, False)
        model = precision.prepare(build_classifier("resnet50", 2, None, seed=0).to(device))
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        scaler = precision.grad_scaler()
        if cuda:
            torch.cuda.reset_peak_memory_stats()

        def step():
            model.train()
            with precision.autocast():
                logits = model(precision.inputs(x))
            loss = torch.nn.functional.cross_entropy(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

        train = batch / timed(step, repeats)
        model.eval()
        with torch.no_grad():
            predict = batch / timed(lambda: precision.forward(model)(x), repeats)
            logits = precision.forward(model)(x[:16])
        fixed = build_classifier("resnet50", 2, None, seed=1).to(device).eval()
        with torch.no_grad():
            fixed_logits = precision.forward(precision.prepare(fixed))(x[:16])
        if reference is None:
            reference = fixed_logits
        gap = float((fixed_logits - reference).abs().max())
        ig_batch = min(8, batch)
        ig = ig_batch / timed(lambda: attribute(fixed, x[:ig_batch], torch.zeros_like(x[:ig_batch]),
                                                torch.ones_like(x[:ig_batch, :1]), y[:ig_batch], ig_steps, 200,
                                                precision), 2)
        peak = torch.cuda.max_memory_allocated() / 2 ** 20 if cuda else float("nan")
        print(f"{name:<34}{train:>12.0f}{predict:>15.0f}{ig:>10.1f}{gap:>14.2e}{peak:>10.0f}", flush=True)
        del model, optimizer, fixed, logits
        if cuda:
            torch.cuda.empty_cache()


def gpu_resume_check(device_name: str = "cuda") -> None:
    """train_erm on a small drawn set (tiny ResNet, 32 px) on the GPU: uninterrupted, and killed after
    epoch 2 then resumed; are the final weights equal? Per precision, and with cuDNN's deterministic mode."""
    import tempfile

    import numpy as np
    import pandas as pd
    import torch
    from PIL import Image

    from ddb.erm import train_erm
    from ddb.resume import TrainingCheckpoint
    from ddb.settings import dataset_settings

    folder = Path(tempfile.mkdtemp())
    rng, rows = np.random.default_rng(0), []
    for split, n in (("train", 96), ("val", 16)):
        for i in range(n):
            y, s = i % 2, (i // 2) % 2
            colour = np.array([200, 40, 40] if y == 0 else [40, 40, 200]) + (30 if s else 0)
            Image.fromarray((colour + rng.integers(0, 60, (32, 32, 3))).clip(0, 255).astype(np.uint8)).save(
                folder / f"{split}{i}.png")
            rows.append({"sample_id": f"{split}{i}", "path": str(folder / f"{split}{i}.png"), "split": split, "y": y,
                         "class_name": "ab"[y], "spurious": "xy"[s], "group": f"{'ab'[y]}_{'xy'[s]}"})
    manifest = pd.DataFrame(rows)

    class Interrupted(Exception):
        pass

    class KilledAfter(TrainingCheckpoint):
        def save(self, state):
            super().save(state)
            if state["epoch"] == 2:
                raise Interrupted

    print(f"\ntrain_erm resumed after epoch 2 of 4 on {device_name} (tiny ResNet, 32 px): same weights as "
          "an uninterrupted run?")
    for precision in ("fp32", "auto", "fp16"):
        for deterministic in (False, True):
            torch.backends.cudnn.deterministic = deterministic
            torch.backends.cudnn.benchmark = False
            cfg = dataset_settings({
                "classes": ["a", "b"], "class_balance": "reweight",
                "classifier": {"arch": "tiny", "weights": None, "image_size": 32, "transform": "stretch",
                               "precision": precision, "channels_last": "auto", "tf32": True},
                "erm": {"checkpoint": None, "epochs": 4, "select_epoch": "last", "batch_size": 16, "lr": 0.01,
                        "optimizer": "sgd", "momentum": 0.9, "weight_decay": 1e-4, "augment": True,
                        "num_workers": 0}}, "bench")
            a, _ = train_erm(manifest, cfg, seed=0, device=device_name)
            path = folder / f"{precision}-{deterministic}.resume.pt"
            try:
                train_erm(manifest, cfg, seed=0, device=device_name, resume=KilledAfter(path, "train_erm", None))
            except Interrupted:
                pass
            torch.manual_seed(12345)
            b, _ = train_erm(manifest, cfg, seed=0, device=device_name,
                             resume=TrainingCheckpoint(path, "train_erm", None))
            gaps = [float((a.state_dict()[k].float() - b.state_dict()[k].float()).abs().max()) for k in a.state_dict()]
            print(f"  precision {precision:<5} cudnn.deterministic {str(deterministic):<5}: "
                  f"{'identical' if max(gaps) == 0 else f'differ (max |Δw| {max(gaps):.2e})'}", flush=True)
    torch.backends.cudnn.deterministic = False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=REPO / "results" / "precision" / "fp32",
                        help="a finished float32 demo run (made there if missing)")
    parser.add_argument("--end-to-end", action="store_true", help="also rerun the demo with precision bf16")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--gpu", action="store_true", help="only: ResNet-50 throughput per precision on a CUDA GPU")
    args = parser.parse_args()
    if args.gpu:
        gpu_timing()
        return gpu_resume_check()
    args.workdir = args.workdir.resolve()
    if not artifact_path(args.workdir / "results", "demo", "eval_json").exists():
        print(f"running the float32 demo in {args.workdir} ...", flush=True)
        print(f"  {run_demo(args.workdir, args.cores):.0f} s\n")
    fixed_model_comparison(args.workdir)
    if args.end_to_end:
        end_to_end(args.workdir, args.workdir.parent / "bf16", args.cores)


if __name__ == "__main__":
    main()
