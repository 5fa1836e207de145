"""The lines and tables of the generation steps, one shard at a time: mask, inpaint, ig_score."""

from __future__ import annotations

from ..paths import ARTIFACTS
from ..results.reader import Results, tar_members
from ..results.tables import fmt
from .registry import ARTIFACT, StepSummary, summary, table
from .text import pct


@summary("mask")
def _summary_mask(results: Results) -> StepSummary:
    parts, rows, images, data = [], 0, 0, {}
    for cls in results.classes():
        shards = results.mask_shards(cls)
        if not shards:
            continue
        index = results.mask_index(cls)
        n_images = sum(tar_members(tar) for _, tar in shards)
        detected = int(index["detected"].sum())
        rows += len(index)
        images += n_images
        data[cls] = {"sources": len(index), "detected": detected, "images": n_images, "shards": len(shards)}
        parts.append(f"{cls} {detected}/{len(index)}")
    if not data:
        raise FileNotFoundError("masks")
    total = sum(d["detected"] for d in data.values())
    figure = f"masks detected {total} of {rows} ({pct(total, rows)}): " + ", ".join(parts)
    return StepSummary("mask", ARTIFACT["mask"], rows=rows, images=images, figure=figure, status="done",
                       data=data)


@summary("inpaint")
def _summary_inpaint(results: Results) -> StepSummary:
    parts, rows, images, data = [], 0, 0, {}
    for src, dst in results.pairs():
        shards = results.inpaint_shards(src, dst)
        if not shards:
            continue
        index = results.inpaint_index(src, dst)
        n_images = sum(tar_members(tar) for _, tar in shards)
        generated = int(index["has_image"].sum())
        rows += len(index)
        images += n_images
        data[f"{src}_to_{dst}"] = {"sources": len(index), "generated": generated, "images": n_images,
                                   "shards": len(shards)}
        parts.append(f"{src}→{dst} {generated}/{len(index)}")
    if not data:
        raise FileNotFoundError("inpaint")
    total = sum(d["generated"] for d in data.values())
    figure = f"generated {total} of {rows} sources: " + ", ".join(parts)
    return StepSummary("inpaint", ARTIFACT["inpaint"], rows=rows, images=images, figure=figure, status="done",
                       data=data)


@summary("ig_score")
def _summary_ig_score(results: Results) -> StepSummary:
    parts, rows, data = [], 0, {}
    for src, dst in results.pairs():
        table = results.ig_table(src, dst)
        if table.empty and not results.ig_shards(src, dst):
            continue
        scored = table[table["has_image"].astype(bool)] if len(table) else table
        rows += len(table)
        median = float(scored["rho"].median()) if len(scored) else float("nan")
        data[f"{src}_to_{dst}"] = {"rows": len(table), "scored": len(scored), "rho_median": median,
                                   "p_target_mean": float(scored["p_target"].mean()) if len(scored) else None}
        parts.append(f"{src}→{dst} {len(scored)} scored, median ρ {fmt(median)}")
    if not data:
        raise FileNotFoundError("ig")
    return StepSummary("ig_score", ARTIFACT["ig_score"], rows=rows, figure=" · ".join(parts), status="done",
                       data=data)


@table("mask")
def _table_mask(results):
    rows = []
    for cls in results.classes():
        for n, tar in results.mask_shards(cls):
            index = results.table(results.shard_index(tar))
            detected = index[index["detected"].astype(bool)]
            rows.append([cls, results.rel(tar), len(index), len(detected), len(index) - len(detected),
                         tar_members(tar), float(detected["area"].mean()) if len(detected) else float("nan")])
    if not rows:
        raise FileNotFoundError("masks")
    rows.append(["total", "", *[sum(r[i] for r in rows) for i in (2, 3, 4, 5)], ""])
    return (f"masks per source class and shard ({ARTIFACTS['mask_tar']} + .parquet)",
            ["class", "shard", "sources", "detected", "no detection", "PNGs", "mean area"], rows)


@table("inpaint")
def _table_inpaint(results):
    rows = []
    for src, dst in results.pairs():
        for n, tar in results.inpaint_shards(src, dst):
            index = results.table(results.shard_index(tar))
            prompt = str(index["prompt"].iloc[0]) if len(index) else "-"
            rows.append([f"{src}→{dst}", results.rel(tar), len(index), int(index["has_image"].sum()),
                         tar_members(tar), prompt])
    if not rows:
        raise FileNotFoundError("inpaint")
    rows.append(["total", "", *[sum(r[i] for r in rows) for i in (2, 3, 4)], ""])
    return (f"generated images per class pair and shard ({ARTIFACTS['inpaint_tar']} + .parquet)",
            ["pair", "shard", "sources", "generated", "PNGs", "prompt"], rows)


@table("ig_score")
def _table_ig_score(results):
    rows = []
    for src, dst in results.pairs():
        table = results.ig_table(src, dst)
        if table.empty:
            continue
        scored = table[table["has_image"].astype(bool)]
        rows.append([f"{src}→{dst}", len(table), len(scored), float(scored["rho"].mean()),
                     float(scored["rho"].median()), float(scored["rho"].min()), float(scored["rho"].max()),
                     float(scored["delta"].abs().mean()), float(scored["p_source"].mean()),
                     float(scored["p_target"].mean())])
    if not rows:
        raise FileNotFoundError("ig")
    return (f"Integrated Gradients per class pair ({ARTIFACTS['ig_scores']})",
            ["pair", "rows", "scored", "mean ρ", "median ρ", "min ρ", "max ρ", "mean |δ|", "mean p_src",
             "mean p_tgt"], rows)
