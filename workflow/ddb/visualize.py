"""Step ``visualize``: what DDB did, as pictures and small tables under ``results/NAME/report/``.

* ``pairs/{src}_to_{dst}.png``: rows of source | mask | generated | IG heat map for a seeded sample of
  kept and pruned generations of the pair, each row captioned with the Ψ-relative confidence
  p(src)/Ψ_src, ρ against P_dst, and the prune verdict. The IG attributions are recomputed here (same
  inputs as ``ig_score``: generated image, baseline = source, target = dst) for the few rows shown.
* ``kept_vs_pruned/{src}_to_{dst}.png``: a sample of kept generations beside a sample of pruned ones.
* ``retrain_curves.png`` (loss terms and validation WGA per epoch, ERM beside DDB) and
  ``textual_inversion_loss.png`` (the loss of each class's token per step).
* ``eval.html/.csv``, ``prune.html/.csv``, ``psi.html/.csv``: the tables a Snakemake report can embed.
* ``grid_samples.csv``: which sample sits in which tile of which grid, with its figures.
* ``tune.html/.csv`` (rule ``visualize_tune``, for a dataset with a ``tune`` section): every candidate's
  P, γ, kept images per class and validation figures, the selected one marked. With tuning, the grids,
  curves and prune tables above show the candidate tune/selected.json names.

The step reads only the rule's declared inputs (:data:`INPUTS`, passed by name) and the source images the
manifest lists; it never looks around the run's folder for other files.

Every grid has a fixed geometry (constants below; :func:`pair_grid_size`, :func:`gallery_size`), so
the number of tiles can be read back from the PNG's size.
"""

from __future__ import annotations

import html
import io as _io
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from .errors import DDBError
from .results.reader import eval_models, prune_counts_of, rehearsal_line
from .results.schema import REASONS
from .results.tables import eval_rows, eval_title, fmt, tune_rows
from .storage.shards import ImageShard
from .storage.atomic import atomic_path, write_png
from .storage.images import load_image
from .storage.reading import read_json, read_parquet
from .paths import ARTIFACTS, report_file, report_folder, run_folder_of, run_of_folder, wildcards_of
from .seeding import derive_seed
from .selection_checks import format_warnings
from .settings import IgSettings
from .tuning import read_selection

# ---- geometry (pixels)
TILE = 128           # every image tile is TILE x TILE
PAD = 6              # gap around tiles
TITLE_H = 30         # title band at the top of a grid
HEADER_H = 20        # column headings under the title
CAPTION_W = 250      # text column right of each row of a pair grid
CAPTION_H = 34       # two text lines under each tile of a gallery
GALLERY_COLS = 4     # tiles per row on each side of a gallery
GAP = 24             # space between the kept and the pruned side of a gallery
PAIR_COLUMNS = ("source", "mask", "generated", "IG")

BACKGROUND = (255, 255, 255)
TITLE_BG = (236, 238, 242)
TEXT = (20, 20, 20)
MUTED = (95, 95, 95)
KEPT = (24, 128, 56)
PRUNED = (196, 40, 40)

def pair_grid_size(rows: int) -> tuple[int, int]:
    """(width, height) of a pair grid with ``rows`` rows (0 rows keeps one row's height for a message)."""
    width = PAD + len(PAIR_COLUMNS) * (TILE + PAD) + CAPTION_W
    height = TITLE_H + HEADER_H + max(rows, 1) * (TILE + PAD) + PAD
    return width, height


def gallery_size(kept: int, pruned: int) -> tuple[int, int]:
    """(width, height) of a kept-vs-pruned gallery showing ``kept`` and ``pruned`` tiles."""
    rows = max(1, math.ceil(max(kept, pruned) / GALLERY_COLS))
    width = PAD + 2 * GALLERY_COLS * (TILE + PAD) + GAP
    height = TITLE_H + HEADER_H + rows * (TILE + CAPTION_H + PAD) + PAD
    return width, height


# ---------------------------------------------------------------------------------------------------
# drawing helpers
# ---------------------------------------------------------------------------------------------------

_FONTS: dict[tuple[int, bool], ImageFont.ImageFont] = {}


def font(size: int = 12, bold: bool = False) -> ImageFont.ImageFont:
    """DejaVu Sans from matplotlib's data (has Ψ, ρ, →); the same file everywhere, so output is stable."""
    key = (size, bold)
    if key not in _FONTS:
        try:
            from matplotlib import font_manager

            path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans",
                                                                     weight="bold" if bold else "normal"),
                                         fallback_to_default=True)
            _FONTS[key] = ImageFont.truetype(path, size)
        except Exception:  # pragma: no cover - no FreeType: PIL's bitmap font (no Greek, still readable)
            _FONTS[key] = ImageFont.load_default()
    return _FONTS[key]


def _text(draw: ImageDraw.ImageDraw, xy, text: str, size: int = 12, fill=TEXT, bold: bool = False,
          max_width: int | None = None) -> None:
    face = font(size, bold)
    if max_width is not None:
        while text and draw.textlength(text, font=face) > max_width:
            text = text[:-2] + "…" if len(text) > 2 else ""
    draw.text(xy, text, font=face, fill=fill)


def fit_tile(image: Image.Image, resample=Image.BICUBIC) -> Image.Image:
    """An image as a TILE x TILE RGB tile (nearest-neighbour when enlarging, so pixels stay crisp)."""
    image = image.convert("RGB")
    if image.size == (TILE, TILE):
        return image
    if image.width <= TILE and image.height <= TILE:
        resample = Image.NEAREST
    return image.resize((TILE, TILE), resample)


def mask_tile(source: Image.Image, mask: np.ndarray) -> Image.Image:
    """The source with everything outside the mask dimmed, and the mask's outline: what was cut."""
    src = np.asarray(fit_tile(source)).astype(np.float32)
    m = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((TILE, TILE), Image.NEAREST)) > 127
    out = np.where(m[..., None], src, src * 0.22 + 20)
    edge = m & ~_erode(m)
    out[edge] = (255, 214, 0)
    return Image.fromarray(out.clip(0, 255).astype(np.uint8))


def _erode(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1, mode="edge")
    out = mask.copy()
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            out &= padded[dy:dy + mask.shape[0], dx:dx + mask.shape[1]]
    return out


def heat_tile(generated: Image.Image, attribution: np.ndarray, mask: np.ndarray) -> tuple[Image.Image, float]:
    """Attributions (summed over channels) on a grey copy of the generated image: red pushes f towards
    the target class, blue away; a symmetric scale per tile (the 99th percentile of |attribution|, so a
    few extreme pixels do not wash out the rest); the mask's outline in black. Returns the tile and
    that scale."""
    from matplotlib import colormaps

    grey = np.asarray(fit_tile(generated).convert("L").convert("RGB")).astype(np.float32)
    a = attribution.astype(np.float32)
    scale = float(np.percentile(np.abs(a), 99)) or float(np.abs(a).max())
    norm = np.clip(a / scale, -1, 1) if scale > 0 else a
    norm = np.asarray(Image.fromarray(norm).resize((TILE, TILE), Image.NEAREST))
    colours = colormaps["RdBu_r"]((norm + 1) / 2)[..., :3] * 255
    alpha = (np.abs(norm) ** 0.6 * 0.9)[..., None]
    out = grey * 0.55 * (1 - alpha) + colours * alpha + 60 * (1 - alpha)
    m = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((TILE, TILE), Image.NEAREST)) > 127
    out[m & ~_erode(m)] = (0, 0, 0)
    return Image.fromarray(out.clip(0, 255).astype(np.uint8)), scale


def _title(draw: ImageDraw.ImageDraw, width: int, text: str) -> None:
    draw.rectangle([0, 0, width, TITLE_H - 1], fill=TITLE_BG)
    _text(draw, (PAD, 8), text, size=13, bold=True, max_width=width - 2 * PAD)


# ---------------------------------------------------------------------------------------------------
# choosing what to show (seeded, so a rerun draws the same grid)
# ---------------------------------------------------------------------------------------------------

def _seeded_order(frame: pd.DataFrame, seed: int, *keys) -> pd.DataFrame:
    rng = np.random.default_rng(derive_seed(seed, "visualize", *keys))
    return frame.iloc[rng.permutation(len(frame))]


def _round_robin(pruned: pd.DataFrame, n: int, seed: int, *keys) -> pd.DataFrame:
    """Up to ``n`` pruned rows, alternating between the prune reasons so each reason is seen."""
    queues = [_seeded_order(pruned[pruned["reason"] == r], seed, *keys, r) for r in REASONS[1:]]
    queues = [q for q in queues if len(q)]
    picked, i = [], 0
    while len(picked) < n and any(len(q) > i for q in queues):
        for q in queues:
            if len(q) > i and len(picked) < n:
                picked.append(q.iloc[i])
        i += 1
    return pd.DataFrame(picked, columns=pruned.columns)


def choose_rows(verdicts: pd.DataFrame, n: int, seed: int, pair: str) -> pd.DataFrame:
    """Half kept, half pruned (fewer of one → more of the other), kept first, each sorted by id."""
    candidates = verdicts[verdicts["reason"] != "no_mask"]
    kept, pruned = candidates[candidates["keep"]], candidates[~candidates["keep"]]
    n_pruned = min(len(pruned), n // 2)
    n_kept = min(len(kept), n - n_pruned)
    n_pruned = min(len(pruned), n - n_kept)
    kept = _seeded_order(kept, seed, pair, "kept").head(n_kept).sort_values("sample_id")
    pruned = _round_robin(pruned, n_pruned, seed, pair, "pruned").sort_values(["reason", "sample_id"])
    return pd.concat([kept, pruned], ignore_index=True)


# ---------------------------------------------------------------------------------------------------
# the grids
# ---------------------------------------------------------------------------------------------------

class PairImages:
    """The images of one class pair: sources (manifest), masks and generated images (their shards)."""

    def __init__(self, source_paths: dict[str, str], mask_tars: list[Path], generated_tars: list[Path],
                 resolution: int, image_size: int | None = None, transform: str = "stretch"):
        from .models.classifier import geometry, mask_geometry

        self.resolution = resolution
        # what f sees (its resize/crop), for the IG tile: attributions live on that grid
        self.view = geometry(image_size, transform) if image_size else (lambda image: image)
        self.mask_view = mask_geometry(image_size, transform) if image_size else (lambda image: image)
        self.paths = source_paths
        self.generated = [ImageShard(tar) for tar in generated_tars]
        self.masks = [ImageShard(tar) for tar in mask_tars]

    @staticmethod
    def _lookup(shards: list[ImageShard], sample_id: str) -> Image.Image | None:
        for shard in shards:
            if sample_id in shard:
                return shard.image(sample_id)
        return None

    def has(self, generated_id: str) -> bool:
        return any(generated_id in shard for shard in self.generated)

    def source(self, source_id: str) -> Image.Image:
        return load_image(self.paths[source_id]).resize((self.resolution, self.resolution), Image.BICUBIC)

    def original_source(self, source_id: str) -> Image.Image:
        return load_image(self.paths[source_id])

    def mask_image(self, source_id: str) -> Image.Image | None:
        return self._lookup(self.masks, source_id)

    def generated_image(self, generated_id: str) -> Image.Image:
        return self._lookup(self.generated, generated_id).convert("RGB")

    def classifier_mask(self, source_id: str) -> np.ndarray:
        image = self.mask_image(source_id)
        if image is None:
            return np.zeros((self.resolution, self.resolution), bool)
        return np.asarray(self.mask_view(image.convert("L"))) > 127

    def mask(self, source_id: str) -> np.ndarray:
        image = self._lookup(self.masks, source_id)
        if image is None:
            return np.zeros((self.resolution, self.resolution), bool)
        return np.asarray(image.convert("L")) > 127


def recompute_attributions(model, images: PairImages, rows: pd.DataFrame, *, image_size: int, ig: IgSettings,
                           device, transform: str = "stretch") -> tuple[np.ndarray, np.ndarray]:
    """(rho[B], attributions summed over channels [B, H, W]) for ``rows``, built exactly like ``ig_score``'s."""
    import torch

    from .ig_scoring import attribute, mask_tensor
    from .models.classifier import eval_transform

    if rows.empty:
        return np.zeros(0), np.zeros((0, image_size, image_size))
    recipe, to_tensor = transform, eval_transform(image_size, transform)
    records = rows.to_dict("records")
    x_gen = torch.stack([to_tensor(images.generated_image(r["sample_id"])) for r in records])
    x_src = torch.stack([to_tensor(images.original_source(r["source_id"])) for r in records])
    masks = torch.stack([mask_tensor(images.mask_image(r["source_id"]), image_size, recipe) for r in records])
    targets = torch.as_tensor([int(y) for y in rows["y"]])
    rho, _, attributions = attribute(model, x_gen.to(device), x_src.to(device), masks.to(device), targets.to(device),
                                     ig.n_steps, ig.internal_batch_size)
    return rho.cpu().numpy(), attributions.sum(dim=1).cpu().numpy()


def ratio_of(row: dict) -> float:
    return float(row["p_source"]) / float(row["psi_source"]) if row["psi_source"] else float("nan")


def verdict_label(row: dict) -> tuple[str, tuple]:
    return ("KEPT", KEPT) if row["keep"] else (f"PRUNED: {row['reason']}", PRUNED)


def draw_pair_grid(src: str, dst: str, rows: pd.DataFrame, images: PairImages, attributions: np.ndarray,
                   counts: dict) -> tuple[Image.Image, list[dict]]:
    """The source | mask | generated | IG grid; returns the image and one record per row shown."""
    width, height = pair_grid_size(len(rows))
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    _title(draw, width, f"{src} → {dst}: {counts['generated']} generated, kept {counts['kept']} "
                        f"({counts['kept_percent']:.1f} %) · still_source {counts['still_source']} · "
                        f"low_ig {counts['low_ig']} · no_mask {counts['no_mask']}")
    headings = (f"source ({src})", "mask (cut region)", f"generated → {dst}", "IG (red +, blue −)")
    for col, heading in enumerate(headings):
        _text(draw, (PAD + col * (TILE + PAD), TITLE_H + 3), heading, size=11, fill=MUTED, max_width=TILE)
    _text(draw, (PAD + len(PAIR_COLUMNS) * (TILE + PAD), TITLE_H + 3), "p/Ψ_src · ρ vs P_dst · verdict",
          size=11, fill=MUTED)
    records = []
    if rows.empty:
        _text(draw, (PAD, TITLE_H + HEADER_H + TILE // 2), "no generated image to show for this pair",
              size=13, fill=MUTED)
    for i, row in enumerate(rows.to_dict("records")):
        y0 = TITLE_H + HEADER_H + i * (TILE + PAD)
        source = images.source(row["source_id"])
        mask = images.mask(row["source_id"])
        generated = images.generated_image(row["sample_id"])
        heat, scale = heat_tile(images.view(generated), attributions[i], images.classifier_mask(row["source_id"]))
        for col, tile in enumerate((fit_tile(source), mask_tile(source, mask), fit_tile(generated), heat)):
            canvas.paste(tile, (PAD + col * (TILE + PAD), y0))
        label, colour = verdict_label(row)
        x = PAD + len(PAIR_COLUMNS) * (TILE + PAD)
        ratio = ratio_of(row)
        lines = [
            (row["sample_id"], 11, MUTED, False),
            (f"p({src})/Ψ = {row['p_source']:.4f}/{row['psi_source']:.4f}", 12, TEXT, False),
            (f"      = {ratio:.3f} {'≥' if row['still_source'] else '<'} 1", 12, TEXT, False),
            (f"ρ = {row['rho']:.3f} {'≤' if row['low_ig'] else '>'} P_{dst} = {row['threshold']:g}", 12, TEXT, False),
            (f"p({dst}) = {row['p_target']:.3f}" if not pd.isna(row.get("p_target")) else "", 12, TEXT, False),
            (label, 13, colour, True),
            (f"IG colour scale ±{scale:.3g}", 10, MUTED, False),
        ]
        for j, (text, size, fill, bold) in enumerate(lines):
            _text(draw, (x, y0 + 2 + j * 18), text, size=size, fill=fill, bold=bold, max_width=CAPTION_W - PAD)
        draw.rectangle([x - 3, y0, x - 2, y0 + TILE - 1], fill=colour)
        records.append({"row": i, "col": 0, "sample_id": row["sample_id"], "source_id": row["source_id"],
                        "keep": bool(row["keep"]), "reason": row["reason"], "rho": float(row["rho"]),
                        "p_source": float(row["p_source"]), "psi_source": float(row["psi_source"]),
                        "ratio": ratio, "threshold": float(row["threshold"])})
    return canvas, records


def draw_gallery(src: str, dst: str, kept: pd.DataFrame, pruned: pd.DataFrame, images: PairImages,
                 counts: dict) -> tuple[Image.Image, list[dict]]:
    """Kept generations on the left, pruned ones on the right, each tile captioned with ρ, p/Ψ, reason."""
    width, height = gallery_size(len(kept), len(pruned))
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    _title(draw, width, f"{src} → {dst}: a sample of kept and of pruned generations")
    side_width = GALLERY_COLS * (TILE + PAD)
    reasons = ", ".join(f"{r} {counts[r]}" for r in REASONS[1:] if counts[r])
    headings = (f"kept: {counts['kept']} of {counts['generated']} (showing {len(kept)})",
                f"pruned: {counts['generated'] - counts['kept']} of {counts['generated']}"
                + (f" — {reasons}" if reasons else "") + f" (showing {len(pruned)})")
    records = []
    for side, (frame, heading, colour) in enumerate(((kept, headings[0], KEPT), (pruned, headings[1], PRUNED))):
        x_side = PAD + side * (side_width + GAP)
        _text(draw, (x_side, TITLE_H + 3), heading, size=11, fill=colour, bold=True, max_width=side_width - PAD)
        if frame.empty:
            _text(draw, (x_side, TITLE_H + HEADER_H + TILE // 2), "none", size=13, fill=MUTED)
        for k, row in enumerate(frame.to_dict("records")):
            r, c = divmod(k, GALLERY_COLS)
            x = x_side + c * (TILE + PAD)
            y = TITLE_H + HEADER_H + r * (TILE + CAPTION_H + PAD)
            canvas.paste(fit_tile(images.generated_image(row["sample_id"])), (x, y))
            draw.rectangle([x, y + TILE, x + TILE - 1, y + TILE + 2], fill=colour)
            _text(draw, (x, y + TILE + 4), f"{row['source_id']} · ρ {row['rho']:.2f}", size=10, fill=TEXT,
                  max_width=TILE)
            _text(draw, (x, y + TILE + 18), f"p/Ψ {ratio_of(row):.2f} · {row['reason']}", size=10,
                  fill=colour, max_width=TILE)
            records.append({"row": r, "col": side * GALLERY_COLS + c, "sample_id": row["sample_id"],
                            "source_id": row["source_id"], "keep": bool(row["keep"]), "reason": row["reason"],
                            "rho": float(row["rho"]), "p_source": float(row["p_source"]),
                            "psi_source": float(row["psi_source"]), "ratio": ratio_of(row),
                            "threshold": float(row["threshold"])})
    return canvas, records


# ---------------------------------------------------------------------------------------------------
# curves
# ---------------------------------------------------------------------------------------------------

def _save_figure(figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    buffer = _io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    plt.close(figure)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def plot_training_curves(retrain: pd.DataFrame, erm: pd.DataFrame | None, classes: list[str], path: Path) -> None:
    """Left: the retraining loss terms per epoch; right: validation WGA (and mean) per epoch, ERM vs DDB."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(retrain["epoch"], retrain["loss"], "k-o", label="L (total)")
    left.plot(retrain["epoch"], retrain["loss_ce"], "-o", label="L_CE (real batch)")
    for c, name in enumerate(classes):
        if f"loss_gen_{c}" in retrain:
            left.plot(retrain["epoch"], retrain[f"loss_gen_{c}"], "--o", label=f"L_gen({name}) (before γ)")
    left.set(title="retraining loss terms per epoch", xlabel="epoch", ylabel="mean loss per step")
    left.legend(fontsize=8)
    right.plot(retrain["epoch"], retrain["val_worst_group_accuracy"], "-o", color="tab:red", label="DDB val WGA")
    right.plot(retrain["epoch"], retrain["val_mean_accuracy"], "-o", color="tab:blue", label="DDB val mean")
    if erm is not None and len(erm):
        right.plot(erm["epoch"], erm["val_worst_group_accuracy"], ":s", color="tab:red", alpha=0.6,
                   label="ERM val WGA")
        right.plot(erm["epoch"], erm["val_mean_accuracy"], ":s", color="tab:blue", alpha=0.6, label="ERM val mean")
    if "selected" in retrain and retrain["selected"].any():
        chosen = int(retrain.loc[retrain["selected"].astype(bool), "epoch"].iloc[0])
        right.axvline(chosen, color="grey", linestyle="--", linewidth=1, label=f"selected epoch {chosen}")
    right.set(title="validation accuracy per epoch", xlabel="epoch", ylabel="accuracy", ylim=(-0.02, 1.02))
    right.legend(fontsize=8)
    figure.tight_layout()
    _save_figure(figure, path)


def plot_textual_inversion(losses: dict[str, pd.DataFrame], path: Path) -> None:
    """Noise-prediction loss per step of each class's token (thin: raw, thick: moving average)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    if not losses:
        axis.text(0.5, 0.5, "textual inversion is disabled for this dataset", ha="center", va="center")
        axis.set_axis_off()
    for i, (name, loss) in enumerate(losses.items()):
        colour = f"C{i}"
        window = max(1, len(loss) // 10)
        axis.plot(loss["step"], loss["loss"], color=colour, alpha=0.3, linewidth=1)
        axis.plot(loss["step"], loss["loss"].rolling(window, min_periods=1).mean(), color=colour, linewidth=2,
                  label=f"<{name}> (moving average of {window})")
    if losses:
        axis.set(title="textual inversion: loss per step", xlabel="step", ylabel="noise-prediction MSE")
        axis.legend(fontsize=8)
    figure.tight_layout()
    _save_figure(figure, path)


# ---------------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------------

_CSS = ("body{font-family:sans-serif;font-size:14px;margin:12px}table{border-collapse:collapse}"
        "th,td{border:1px solid #ccc;padding:4px 10px;text-align:right}th{background:#eef0f4}"
        "td:first-child,th:first-child{text-align:left}tr.summary td{font-weight:bold;background:#fafafa}"
        ".worst{color:#c42828;font-weight:bold}.up{color:#188038}.down{color:#c42828}p{color:#555}")


def html_table(title: str, columns: list[str], rows: list[list], note: str = "",
               row_classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        cells = []
        for value in row:
            text = value if isinstance(value, str) else fmt(value)
            css = ""
            if text.endswith(" (worst)"):
                css, text = ' class="worst"', text
            cells.append(f"<td{css}>{html.escape(text)}</td>")
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h3>{html.escape(title)}</h3>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            + (f"<p>{html.escape(note)}</p>" if note else "") + "</body></html>\n")


def grid_name(name: str, pair: str) -> str:
    """A grid's path inside report/ (grid_samples.csv's ``grid`` column)."""
    return report_file("", name, pair=pair).as_posix()


def _write_text(text: str, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.8g")


def write_eval_tables(eval_json: str | Path, eval_table: str | Path, name: str, out: Path) -> None:
    """report/eval.html and eval.csv from eval.json and eval.parquet; ``name``: the run (``demo``)."""
    report = read_json(eval_json)
    table = read_parquet(eval_table)
    columns, rows = eval_rows(report, table)
    n_groups = len(rows) - 3
    rehearsal = rehearsal_line(report)  # a run with `random:` models: its accuracies mean nothing
    _write_text(html_table(("REHEARSAL: " if rehearsal else "") + f"{name}: test accuracy, {eval_title(report)}",
                           columns, rows,
                           note=(f"{rehearsal}. " if rehearsal else "")
                                # choices validation could not make (ddb.selection_checks), first thing read
                                + "".join(f"{line}. " for line in format_warnings(report.get("warnings", [])))
                                + "Per-group accuracy on the test split; (worst) marks each model's worst group; "
                                "Δ = DDB − ERM. Train-weighted mean weights each group by its share of the training set."
                                + (" DFR: ERM's last layer refit on group-balanced validation data (the baseline; "
                                   "dfr/selection.parquet has its C grid)." if "dfr" in report else ""),
                           row_classes=[""] * n_groups + ["summary"] * 3), report_file(out, "report_eval_html"))
    models = eval_models(report)
    csv_rows = [{"group": g, **{m: report[m]["group_accuracy"][g] for m in models}}
                for g in sorted(report[models[0]]["group_accuracy"])]
    for key in ("worst_group_accuracy", "mean_accuracy", "weighted_mean_accuracy"):
        csv_rows.append({"group": key, **{m: report[m][key] for m in models}})
    _write_csv(pd.DataFrame(csv_rows), report_file(out, "report_eval_csv"))


def write_prune_tables(counts: pd.DataFrame, name: str, out: Path) -> None:
    """report/prune.html and prune_counts.csv from the counts per pair
    (:func:`ddb.results.reader.prune_counts_of`)."""
    columns = ["pair", "generated", "kept", "kept %", *REASONS[1:], "Ψ_src", "P_dst"]
    rows = [[f"{r['source']} → {r['target']}", r["generated"], r["kept"], f"{r['kept_percent']:.1f} %",
             *[r[reason] for reason in REASONS[1:]], r["psi_source"], r["threshold"]]
            for r in counts.to_dict("records")]
    total, kept = int(counts["generated"].sum()), int(counts["kept"].sum())
    rows.append(["total", total, kept, f"{100 * kept / total:.1f} %" if total else "-",
                 *[int(counts[r].sum()) for r in REASONS[1:]], "", ""])
    _write_text(html_table(f"{name}: pruning per class pair and reason", columns, rows,
                           note="still_source: softmax of the source class ≥ Ψ_src; low_ig: ρ ≤ P_dst; "
                                "no_mask: the masker found nothing to redraw.",
                           row_classes=[""] * (len(rows) - 1) + ["summary"]), report_file(out, "report_prune_html"))
    _write_csv(counts, report_file(out, "report_prune_csv"))


def write_psi_tables(psi_path: str | Path, name: str, out: Path) -> None:
    """report/psi.html and psi.csv from psi.parquet."""
    psi = read_parquet(psi_path)
    rows = [[int(r["class"]), r["class_name"], int(r["k"]), f"{r['psi']:.6f}"] for r in psi.to_dict("records")]
    _write_text(html_table(f"{name}: Ψ per class", ["class", "name", "K", "Ψ"], rows,
                           note="Ψ_c: mean softmax of class c over its K lowest-loss training samples. A generation "
                                "from class c whose softmax of c stays ≥ Ψ_c is pruned (still_source)."),
                report_file(out, "report_psi_html"))
    _write_csv(psi, report_file(out, "report_psi_csv"))


# ---------------------------------------------------------------------------------------------------
# the whole step
# ---------------------------------------------------------------------------------------------------

# The inputs of rule visualize (rules/report.smk), by name: the only files the step reads besides the source
# images its manifest lists. ``tune_selection`` (tune/selected.json) only for a dataset with a `tune` section.
INPUTS = ("manifest", "erm", "erm_history", "ti_loss", "psi", "masks", "generated", "generated_index", "scores",
          "prune", "retrain_history", "eval_json", "eval_table", "tune_selection")


def _paths(value) -> list[Path]:
    """An input as a list of paths (Snakemake gives one file as a string, several as a list)."""
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [Path(value)]
    return [Path(v) for v in value]


def _declared(paths: list[Path], name: str, **wildcards) -> Path | None:
    """The path among ``paths`` that is artifact ``name`` with these wildcards, None if none is."""
    tail = ARTIFACTS[name].format(**wildcards)
    found = [p for p in paths if p.as_posix() == tail or p.as_posix().endswith("/" + tail)]
    if len(found) > 1:  # e.g. every tuning candidate's prune table, and no tune/selected.json to choose one
        raise DDBError(f"visualize input {name}", f"{len(found)} declared files are {tail}: "
                       + ", ".join(map(str, found)), "declare tune/selected.json (tune_selection) for a tuned run")
    return found[0] if found else None


def _single(inputs: Mapping, name: str) -> Path:
    paths = _paths(inputs.get(name))
    if len(paths) != 1:
        raise DDBError(f"visualize input {name}", f"{len(paths)} files where one was expected",
                       "declare it once in rules/report.smk")
    return paths[0]


def by_class_or_pair(paths, name: str) -> dict[str, list[Path]]:
    """Shards of artifact ``name`` grouped as the grids read them: by source class (masks) or by
    "<src>_to_<dst>" (generated images, IG tables)."""
    grouped = defaultdict(list)
    for path in _paths(paths):
        wildcards = wildcards_of(name, path)
        key = f"{wildcards['src']}_to_{wildcards['dst']}" if "dst" in wildcards else wildcards["src"]
        grouped[key].append(Path(path))
    return dict(grouped)


def ddb_inputs(inputs: Mapping, pairs: list[tuple[str, str]]) -> tuple[dict[str, Path], Path]:
    """DDB's prune table per pair ("<src>_to_<dst>") and its retraining history, among the declared inputs:
    the plain ones, or with tuning (a ``tune_selection`` input) the candidate tune/selected.json names."""
    selection = _paths(inputs.get("tune_selection"))
    prune_paths, histories = _paths(inputs["prune"]), _paths(inputs["retrain_history"])
    if selection:
        candidate = {"cand": read_selection(selection[0])["selected"]}
        prune_name, history_name = "tune_prune", "tune_history"
    else:
        candidate, prune_name, history_name = {}, "prune", "retrain_history"
    prune = {f"{src}_to_{dst}": _declared(prune_paths, prune_name, **candidate, src=src, dst=dst) for src, dst in pairs}
    history = _declared(histories, history_name, **candidate)
    missing = [pair for pair, path in prune.items() if path is None] + ([] if history else ["retrain history"])
    if missing:
        raise DDBError("visualize", f"no declared input for {', '.join(missing)}"
                       + (f" of the selected candidate {candidate['cand']}" if candidate else ""),
                       "declare every candidate's prune tables and history (rules/report.smk)")
    return prune, history


def _concat(paths: list[Path]) -> pd.DataFrame:
    frames = [read_parquet(path) for path in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def visualize_dataset(inputs: Mapping, out_dir: str | Path, *, classes: list[str], pairs: list[tuple[str, str]],
                      image_size: int, resolution: int, ig: IgSettings, seed: int, transform: str = "stretch",
                      rows_per_pair: int = 8, gallery_per_side: int = 8, device="cpu",
                      erm_model=None) -> dict[str, list[Path]]:
    """Write every file of ``report/`` from the rule's inputs (``inputs``: :data:`INPUTS` by name, each a path or
    a list of paths); returns the files written by kind. ``erm_model``: ERM's classifier already loaded,
    instead of reading ``inputs["erm"]``."""
    from .models.classifier import load_classifier

    manifest_path = _single(inputs, "manifest")
    name = run_of_folder(run_folder_of("manifest", manifest_path))  # the run, for the titles: demo, demo/seed-1
    mask_tars = by_class_or_pair(inputs.get("masks"), "mask_tar")
    generated_tars = by_class_or_pair(inputs.get("generated"), "inpaint_tar")
    score_tables = by_class_or_pair(inputs.get("scores"), "ig_scores")
    prune_tables, retrain_history = ddb_inputs(inputs, pairs)
    manifest = read_parquet(manifest_path, ["sample_id", "path"])
    source_paths = dict(zip(manifest["sample_id"], manifest["path"]))
    out = Path(out_dir)
    for folder in ("report_pairs", "report_kept_vs_pruned"):  # the rule's directory() outputs, even if empty
        report_folder(out, folder).mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {"tables": [], "curves": [], "pairs": [], "galleries": []}

    write_eval_tables(_single(inputs, "eval_json"), _single(inputs, "eval_table"), name, out)
    order = {c: i for i, c in enumerate(classes)}  # the pairs in class order, as ddb inspect lists them
    verdict_tables = {pair: read_parquet(path) for pair, path in prune_tables.items()}
    counts = prune_counts_of([(src, dst, verdict_tables[f"{src}_to_{dst}"])
                              for src, dst in sorted(pairs, key=lambda p: (order[p[0]], order[p[1]]))])
    write_prune_tables(counts, name, out)
    counts = counts.set_index("pair")
    write_psi_tables(_single(inputs, "psi"), name, out)
    written["tables"] += [report_file(out, table) for table in ("report_eval_html", "report_eval_csv",
                                                                "report_prune_html", "report_prune_csv",
                                                                "report_psi_html", "report_psi_csv")]

    erm = read_parquet(_single(inputs, "erm_history"))
    plot_training_curves(read_parquet(retrain_history), erm, classes, report_file(out, "report_retrain_curves"))
    ti_losses = _paths(inputs.get("ti_loss"))
    losses = {cls: read_parquet(path) for cls in classes
              if (path := _declared(ti_losses, "ti_loss", cls=cls)) is not None}
    plot_textual_inversion(losses, report_file(out, "report_ti_curve"))
    written["curves"] += [report_file(out, "report_retrain_curves"), report_file(out, "report_ti_curve")]

    model = erm_model if erm_model is not None else load_classifier(_single(inputs, "erm"), device)[0]
    shown = []
    for src, dst in pairs:
        pair = f"{src}_to_{dst}"
        verdicts = verdict_tables[pair]
        scores = _concat(score_tables.get(pair, []))
        if len(scores):
            verdicts = verdicts.merge(scores[["sample_id", "p_target"]], on="sample_id", how="left")
        else:
            verdicts["p_target"] = np.nan
        images = PairImages(source_paths, mask_tars.get(src, []), generated_tars.get(pair, []), resolution,
                            image_size, transform)
        verdicts = verdicts[verdicts["sample_id"].map(images.has)]
        pair_counts = counts.loc[pair].to_dict()

        rows = choose_rows(verdicts, rows_per_pair, seed, pair)
        rho, attributions = recompute_attributions(model, images, rows, image_size=image_size, ig=ig,
                                                   device=device, transform=transform)
        grid, records = draw_pair_grid(src, dst, rows, images, attributions, pair_counts)
        write_png(grid, report_file(out, "report_pairs", pair=pair))
        for record, value in zip(records, rho):
            shown.append({"grid": grid_name("report_pairs", pair), **record, "rho_recomputed": float(value)})
        written["pairs"].append(report_file(out, "report_pairs", pair=pair))

        candidates = verdicts[verdicts["reason"] != "no_mask"]
        kept = _seeded_order(candidates[candidates["keep"]], seed, pair, "gallery").head(gallery_per_side)
        pruned = _round_robin(candidates[~candidates["keep"]], gallery_per_side, seed, pair, "gallery")
        gallery, records = draw_gallery(src, dst, kept.sort_values("sample_id"),
                                        pruned.sort_values(["reason", "sample_id"]), images, pair_counts)
        write_png(gallery, report_file(out, "report_kept_vs_pruned", pair=pair))
        shown += [{"grid": grid_name("report_kept_vs_pruned", pair), **record, "rho_recomputed": np.nan} for record in records]
        written["galleries"].append(report_file(out, "report_kept_vs_pruned", pair=pair))

    columns = ["grid", "row", "col", "sample_id", "source_id", "keep", "reason", "rho", "rho_recomputed",
               "p_source", "psi_source", "ratio", "threshold"]
    _write_csv(pd.DataFrame(shown, columns=columns), report_file(out, "report_grid_samples"))
    written["tables"].append(report_file(out, "report_grid_samples"))
    return written


# ---------------------------------------------------------------------------------------------------
# tuning (rule visualize_tune): every candidate side by side
# ---------------------------------------------------------------------------------------------------

def write_tune_tables(table_path: str | Path, selection_path: str | Path, html_path: str | Path,
                      csv_path: str | Path) -> None:
    """report/tune.html and tune.csv from tune/candidates.parquet: P, γ, kept generated images per class,
    validation WGA and mean accuracy per candidate, the selected one marked (ddb.tuning)."""
    table = read_parquet(table_path)
    chosen = read_selection(selection_path)
    classes = list(chosen.get("kept", {})) or None
    columns, rows = tune_rows(table, classes or [])
    selected = [r[-1] == "*" for r in rows]
    rows = [r[:-1] + ["selected" if s else ""] for r, s in zip(rows, selected)]
    dataset = chosen["dataset"]
    _write_text(html_table(f"{dataset}: P and γ tuned on validation", columns, rows,
                           note=f"Selected: {chosen['selected']} ({chosen['rule']}); only its model is evaluated on "
                                "test (eval.json). kept c: generated images labelled c that its pruning kept, of "
                                "those generated; val WGA and val mean: validation accuracies at the epoch its "
                                "retraining kept.",
                           row_classes=["summary" if s else "" for s in selected]), Path(html_path))
    _write_csv(table.assign(thresholds=table["thresholds"].map(lambda vs: " ".join(f"{float(v):g}" for v in vs)),
                            gammas=table["gammas"].map(lambda vs: " ".join(f"{float(v):g}" for v in vs))),
               Path(csv_path))
