"""``ddb inspect --sample ID``: one sample followed through every step (its mask, its generated image, its
scores, its verdict), for a source id (``train00001``) or a generated id (``train00001_to_waterbird``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..errors import DDBError
from ..results.reader import Results, eval_models
from ..results.schema import generated_id, generated_id_pattern
from ..results.tables import fmt
from ..storage.reading import read_csv
from .registry import ARTIFACT, NOT_RUN
from .text import format_table


class SampleNotFound(DDBError):
    pass


@dataclass
class Trace:
    sample_id: str
    source_id: str
    lines: list[tuple[str, str, str]] = field(default_factory=list)  # (step, artifact, what)

    def add(self, step: str, artifact: str, what: str) -> None:
        self.lines.append((step, artifact, what))


def _find_row(frame: pd.DataFrame, column: str, value: str) -> dict | None:
    if frame.empty or column not in frame:
        return None
    hit = frame[frame[column].astype(str) == value]
    return hit.iloc[0].to_dict() if len(hit) else None


def trace_sample(results: Results, sample_id: str) -> Trace:
    classes = results.classes()
    manifest = results.table(results.manifest) if results.manifest.exists() else pd.DataFrame()
    source_id, only_dst, only_gid = sample_id, None, None
    if _find_row(manifest, "sample_id", sample_id) is None:
        for dst in classes:
            # <source>_to_<dst>, or <source>_to_<dst>_<draw> with generation.per_source > 1
            match = generated_id_pattern(dst).fullmatch(sample_id)
            if match and _find_row(manifest, "sample_id", match[1]):
                source_id, only_dst, only_gid = match[1], dst, sample_id
                break
        else:
            if manifest.empty:
                raise SampleNotFound(results.manifest, f"does not exist yet (prepare_dataset {NOT_RUN}), "
                                     f"so sample {sample_id!r} cannot be looked up")
            raise SampleNotFound("--sample", f"sample {sample_id!r} is neither in {results.rel(results.manifest)} "
                                 f"nor a generated id (<source id>_to_<class>) of one; ids look like "
                                 f"{manifest['sample_id'].iloc[0]!r}")
    row = _find_row(manifest, "sample_id", source_id)
    trace = Trace(sample_id, source_id)
    y = int(row["y"])
    cls = classes[y] if y < len(classes) else str(y)
    trace.add("prepare_dataset", ARTIFACT["prepare_dataset"],
              f"split {row['split']} · y {y} ({cls}) · spurious {row.get('spurious', '-')} · group {row['group']}"
              f" · image {row['path']}")

    # textual inversion: was this image one the token of its class learned from?
    samples_path = results.paths.path("ti_samples", cls=cls)
    if samples_path.exists():
        samples = results.table(samples_path)
        used = source_id in set(samples["sample_id"].astype(str))
        trace.add("textual_inversion", results.rel(samples_path),
                  f"one of the {len(samples)} images the token <{cls}> learned from" if used
                  else f"not among the {len(samples)} images the token <{cls}> learned from")
    else:
        trace.add("textual_inversion", ARTIFACT["textual_inversion"].format(cls=cls), NOT_RUN)

    if results.low_loss(cls).exists():
        low = results.table(results.low_loss(cls))
        hit = _find_row(low, "sample_id", source_id)
        trace.add("select_low_loss", results.rel(results.low_loss(cls)),
                  f"rank {int(hit['rank'])} of K={len(low)} · loss {hit['loss']:.3g} · softmax {hit['softmax']:.4f}"
                  if hit else f"not among the K={len(low)} lowest-loss samples of {cls}")
    else:
        trace.add("select_low_loss", ARTIFACT["select_low_loss"].format(cls=cls), NOT_RUN)

    psi = results.table(results.psi) if results.psi.exists() else None
    if psi is not None:
        value = psi.loc[psi["class"] == y, "psi"]
        trace.add("mean_softmax", ARTIFACT["mean_softmax"],
                  f"Ψ of its class {cls} = {float(value.iloc[0]):.4f}" if len(value) else f"no Ψ for class {y}")
    else:
        trace.add("mean_softmax", ARTIFACT["mean_softmax"], NOT_RUN)

    if row["split"] != "train":
        trace.add("mask", "-", f"not a generation source (split {row['split']}): DDB redraws training images only")
        _trace_eval(results, trace, row)
        return trace

    # mask
    shards = results.mask_shards(cls)
    mask_row = None
    if shards:
        index = results.mask_index(cls)
        mask_row = _find_row(index, "sample_id", source_id)
        if mask_row is None:
            trace.add("mask", _folder(results, "mask_tar", src=cls), f"not a generation source (not in the {len(index)} sources of "
                                               f"{len(shards)} mask shard(s): generation.sources and "
                                               f"max_sources_per_class choose them)")
        elif mask_row["detected"]:
            box = mask_row.get("box")
            box = "[" + ", ".join(f"{v:g}" for v in box) + "]" if box is not None and len(box) else "-"
            trace.add("mask", mask_row["shard"], f"detected · area {100 * mask_row['area']:.1f} % · box {box} · "
                                                 f"member {source_id}.png")
        else:
            trace.add("mask", mask_row["shard"], "no detection: skipped (reason no_mask), no generated image")
    else:
        trace.add("mask", ARTIFACT["mask"].format(src=cls, n="*"), NOT_RUN)

    for src, dst in results.pairs() or [(cls, d) for d in classes if d != cls]:
        if src != cls or (only_dst and dst != only_dst):
            continue
        _trace_pair(results, trace, source_id, src, dst, in_sources=mask_row is not None or not shards,
                    only_gid=only_gid)
    _trace_eval(results, trace, row)
    return trace


def _trace_pair(results: Results, trace: Trace, source_id: str, src: str, dst: str, in_sources: bool,
                only_gid: str | None = None) -> None:
    """Every image generated from ``source_id`` for this pair (one per draw), or just ``only_gid``."""
    if not in_sources:
        return
    gids = [only_gid] if only_gid else None
    if gids is None and results.inpaint_shards(src, dst):
        index = results.inpaint_index(src, dst)
        gids = index.loc[index["source_id"].astype(str) == source_id, "sample_id"].astype(str).tolist() or None
    for gid in gids or [generated_id(source_id, dst)]:
        _trace_generated(results, trace, gid, src, dst)


def _trace_generated(results: Results, trace: Trace, gid: str, src: str, dst: str) -> None:
    arrow = f"[{src}→{dst}] "
    shards = results.inpaint_shards(src, dst)
    if shards:
        gen = _find_row(results.inpaint_index(src, dst), "sample_id", gid)
        if gen is None:
            trace.add("inpaint", _folder(results, "inpaint_tar", src=src, dst=dst), arrow + f"{gid} not in the index")
        elif gen["has_image"]:
            # the image is read from the shard's tar, so a truncated one is named here, not taken on trust
            member = "" if gid in results.shard_images(results.root / gen["shard"]) else " (missing from the tar)"
            trace.add("inpaint", gen["shard"], arrow + f"{gid}.png{member} · label {dst} (y {int(gen['y'])}) · "
                                               f"prompt {gen['prompt']!r} · seed {int(gen['seed'])}")
        else:
            trace.add("inpaint", gen["shard"], arrow + f"{gid}: no image (no mask to inpaint)")
    else:
        trace.add("inpaint", ARTIFACT["inpaint"].format(src=src, dst=dst, n="*"), arrow + NOT_RUN)

    if results.ig_shards(src, dst):
        score = _find_row(results.ig_table(src, dst), "sample_id", gid)
        if score is None:
            trace.add("ig_score", _folder(results, "ig_scores", src=src, dst=dst), arrow + f"{gid} not scored")
        elif score["has_image"]:
            trace.add("ig_score", score["shard"], arrow + f"ρ {score['rho']:.4f} · δ {score['delta']:.4f} · "
                                                  f"p({src}) {score['p_source']:.4f} · p({dst}) {score['p_target']:.4f}")
        else:
            trace.add("ig_score", score["shard"], arrow + "no image to score")
    else:
        trace.add("ig_score", ARTIFACT["ig_score"].format(src=src, dst=dst, n="*"), arrow + NOT_RUN)

    path = results.prune_table(src, dst)
    verdict = None
    if path.exists():
        verdict = _find_row(results.table(path), "sample_id", gid)
        if verdict is None:
            trace.add("prune", results.rel(path), arrow + f"{gid} has no verdict")
        else:
            trace.add("prune", results.rel(path), arrow + verdict_text(verdict, src, dst))
    else:
        trace.add("prune", results.rel(results.prune_table(src, dst)), arrow + NOT_RUN)

    if results.retrain_history.exists() and verdict is not None:
        trace.add("retrain", results.rel(results.retrain_history),
                  arrow + (f"{gid} trained on, labelled {dst} (γ term of class {dst})" if verdict["keep"]
                           else f"{gid} not used (pruned)"))
    shown = results.paths.path("report_grid_samples")
    if shown.exists():
        grid = read_csv(shown)
        hits = grid[grid["sample_id"].astype(str) == gid]
        for hit in hits.to_dict("records"):
            trace.add("visualize", results.rel(results.report_dir / hit["grid"]), arrow + f"shown in row {int(hit['row']) + 1}, "
                                                               f"column {int(hit['col']) + 1}")


def verdict_text(verdict: dict, src: str, dst: str) -> str:
    ratio = verdict["p_source"] / verdict["psi_source"] if verdict["psi_source"] else float("nan")
    tests = (f"p({src})/Ψ_{src} = {verdict['p_source']:.4f}/{verdict['psi_source']:.4f} = {ratio:.3f} "
             f"({'≥' if verdict['still_source'] else '<'} 1) · ρ {verdict['rho']:.4f} "
             f"{'≤' if verdict['low_ig'] else '>'} P_{dst} {verdict['threshold']:g}"
             if not pd.isna(verdict["rho"]) else "no scores")
    head = "KEPT" if verdict["keep"] else f"PRUNED ({verdict['reason']})"
    return f"{head} · {tests}"


def _trace_eval(results: Results, trace: Trace, row: dict) -> None:
    if row["split"] == "test" and results.eval_json.exists():
        report = results.eval_report()
        parts = [f"{m.upper()} {fmt(report[m]['group_accuracy'].get(row['group']))}"
                 for m in eval_models(report) if m != "dfr"]
        baseline = f" (DFR {fmt(report['dfr']['group_accuracy'].get(row['group']))})" if "dfr" in report else ""
        trace.add("evaluate", ARTIFACT["evaluate"], f"its group {row['group']}: test accuracy " + " → ".join(parts) + baseline)


def format_trace(results: Results, trace: Trace) -> str:
    title = f"sample {trace.sample_id}" + (f" (generated from {trace.source_id})"
                                           if trace.source_id != trace.sample_id else "") + f" in {results.root}"
    return format_table(["step", "artifact", "what"], [list(line) for line in trace.lines], title=title + "\n")


def _folder(results: Results, name: str, **wildcards) -> str:
    """The folder of artifact ``name`` as a trace shows it: relative to the run, with a trailing slash."""
    return results.rel(results.paths.folder(name, **wildcards)) + "/"
