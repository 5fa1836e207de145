"""``ddb inspect``: what each DDB step left under ``results/NAME``, read from its artifacts.

Three views, all plain text (or JSON with ``--json``):

* the overview: one line per step — its artifact, row and image counts, and the step's key figure
  (group counts, K and Ψ, masks detected, images generated, kept %, reasons, WGA before/after);
* ``--step STEP``: that step's own table (e.g. pruning counts per class pair and reason);
* ``--sample ID``: one sample followed through every step (its mask, its generated image, its
  scores, its verdict), for a source id (``train00001``) or a generated id (``train00001_to_waterbird``).

A step whose artifact is missing is listed as "not run yet"; nothing here needs torch, a config or
the Snakefile: only the folder (the artifact layout is in ``docs/artifacts.md``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import pandas as pd

from .paths import ARTIFACTS, RunPaths, run_of_folder
from .pruning import REASONS  # pandas only: inspect stays torch-free
from .steps import inspected
from .tuning import selected_epoch

NOT_RUN = "not run yet"

# (step, aliases a user may type for it), in the order of the overview (ddb.steps)
STEPS = [(step.name, step.aliases) for step in inspected()]
STEP_NAMES = [name for name, _ in STEPS]
# The models of eval.json in table order (ddb.evaluate.MODELS; DFR only where its rule ran).
EVAL_MODELS = ("erm", "dfr", "ddb")


def eval_models(report: dict) -> list[str]:
    return [m for m in EVAL_MODELS if m in report]


def resolve_step(name: str) -> str:
    """The rule name for ``name`` or one of its aliases; ValueError listing the choices otherwise."""
    key = name.strip().lower().replace("-", "_")
    for step, aliases in STEPS:
        if key == step or key in aliases:
            return step
    raise ValueError(f"unknown step {name!r}; choose one of: {', '.join(STEP_NAMES)}")


# ---------------------------------------------------------------------------------------------------
# The artifact layout of one dataset's results folder
# ---------------------------------------------------------------------------------------------------


class Results:
    """Paths of every artifact under ``results/NAME`` (docs/artifacts.md), and what is there now."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.paths = RunPaths(self.root)  # every path below comes from ddb.paths
        self.name = run_of_folder(self.root)  # the dataset, or <dataset>/seed-<s> for another seed's run
        self._classes: list[str] | None = None
        self._tables: dict[Path, pd.DataFrame] = {}

    # --- fixed paths
    @property
    def manifest(self) -> Path:
        return self.paths.path("manifest")

    @property
    def erm_history(self) -> Path:
        return self.paths.path("erm_history")

    @property
    def psi(self) -> Path:
        return self.paths.path("psi")

    @property
    def retrain_history(self) -> Path:
        """DDB's retraining history: retrain/, or with tuning the selected candidate's."""
        return self.paths.ddb_path("retrain_history", self.ddb_candidate)

    # --- tuning (ddb.tuning): with a `tune` section DDB's prune tables and model are a candidate's
    @property
    def tune_dir(self) -> Path:
        return self.paths.path("tune_candidates").parent

    @property
    def tune_candidates(self) -> Path:
        return self.paths.path("tune_candidates")

    @property
    def tune_selection(self) -> Path:
        return self.paths.path("tune_selected")

    @cached_property
    def ddb_candidate(self) -> str | None:
        """The tuned candidate that is DDB: the one eval.json names (``tune.selected``), else, before evaluate
        ran, tune/selected.json's; None for a run without tuning (eval.json without ``tune``)."""
        name = None
        try:
            if self.eval_json.exists():
                name = (self.eval_report().get("tune") or {}).get("selected")
            elif self.tune_selection.exists():
                name = json.loads(self.tune_selection.read_text()).get("selected")
        except (OSError, ValueError, AttributeError):
            name = None
        found = name and self.paths.path("tune_candidate_dir", cand=str(name)).is_dir()
        return name if found else None

    @property
    def dfr_selection(self) -> Path:
        return self.paths.path("dfr_selection")

    @property
    def dfr_halves(self) -> Path:
        return self.paths.path("dfr_halves")

    @property
    def dfr_coefficients(self) -> Path:
        return self.paths.path("dfr_coefficients")

    @property
    def eval_json(self) -> Path:
        return self.paths.path("eval_json")

    @property
    def eval_table(self) -> Path:
        return self.paths.path("eval_table")

    @property
    def report_dir(self) -> Path:
        return self.paths.path("report_dir")

    def low_loss(self, cls: str) -> Path:
        return self.paths.path("low_loss", cls=cls)

    def prune_table(self, src: str, dst: str) -> Path:
        return self.paths.ddb_path("prune", self.ddb_candidate, src=src, dst=dst)

    def rel(self, path: Path) -> str:
        try:
            return Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    # --- discovered: classes, pairs, shards
    def classes(self) -> list[str]:
        """Class names by index: from the manifest, else Ψ, else the folders the steps made."""
        if self._classes is None:
            classes: list[str] = []
            if self.manifest.exists():
                frame = self.table(self.manifest)
                if "class_name" in frame:
                    pairs = frame[["y", "class_name"]].drop_duplicates().sort_values("y")
                    classes = pairs["class_name"].astype(str).tolist()
            if not classes and self.psi.exists():
                classes = self.table(self.psi).sort_values("class")["class_name"].astype(str).tolist()
            if not classes:
                found = set()
                for name, key in (("mask_tar", "src"), ("low_loss", "cls"), ("ti_embeds", "cls")):
                    found |= {wildcards[key] for wildcards, _ in self.paths.find(name)}
                classes = sorted(found)
            self._classes = classes
        return self._classes

    def _split_pair(self, name: str) -> tuple[str, str] | None:
        for src in self.classes():
            for dst in self.classes():
                if src != dst and name == f"{src}_to_{dst}":
                    return src, dst
        if "_to_" in name and not self.classes():
            src, dst = name.split("_to_", 1)
            return src, dst
        return None

    def pairs(self) -> list[tuple[str, str]]:
        """Ordered class pairs (src, dst) that any generation step has written."""
        found = set()
        for name in ("inpaint_tar", "inpaint_index", "ig_scores", "prune"):
            for wildcards, _ in self.paths.ddb_find(name, self.ddb_candidate):
                if pair := self._split_pair(f"{wildcards['src']}_to_{wildcards['dst']}"):
                    found.add(pair)
        order = {c: i for i, c in enumerate(self.classes())}
        return sorted(found, key=lambda p: (order.get(p[0], 99), order.get(p[1], 99), p))

    def _shards(self, name: str, **wildcards) -> list[tuple[int, Path]]:
        return [(int(found["n"]), path) for found, path in self.paths.find(name, **wildcards)]

    def mask_shards(self, src: str) -> list[tuple[int, Path]]:
        """(n, tar) of the finished mask shards of ``src`` (a shard counts once its index is written)."""
        return [(n, tar) for n, tar in self._shards("mask_tar", src=src)
                if self.paths.path("mask_index", src=src, n=n).exists()]

    def inpaint_shards(self, src: str, dst: str) -> list[tuple[int, Path]]:
        return [(n, tar) for n, tar in self._shards("inpaint_tar", src=src, dst=dst)
                if self.paths.path("inpaint_index", src=src, dst=dst, n=n).exists()]

    def ig_shards(self, src: str, dst: str) -> list[tuple[int, Path]]:
        return self._shards("ig_scores", src=src, dst=dst)

    # --- reading
    def table(self, path: Path) -> pd.DataFrame:
        path = Path(path)
        if path not in self._tables:
            self._tables[path] = pd.read_parquet(path)
        return self._tables[path]

    def concat(self, paths: list[Path], **extra) -> pd.DataFrame:
        frames = []
        for path in paths:
            frame = self.table(path).copy()
            for key, value in extra.items():
                frame[key] = value(path) if callable(value) else value
            frames.append(frame)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def shard_index(self, tar: Path) -> Path:
        """The Parquet index beside a mask or inpaint shard ``tar`` of this run."""
        for tar_name, index_name in (("mask_tar", "mask_index"), ("inpaint_tar", "inpaint_index")):
            if (wildcards := self.paths.match(tar_name, tar)) is not None:
                return self.paths.path(index_name, **wildcards)
        raise ValueError(f"{tar} is not a mask or inpaint shard of {self.root}")

    def _index_of_shards(self, shards: list[tuple[int, Path]]) -> pd.DataFrame:
        """The shards' index tables, one frame, each row with its shard's tar (``shard``)."""
        tars = {self.shard_index(tar): tar for _, tar in shards}
        return self.concat(list(tars), shard=lambda index: self.rel(tars[index]))

    def mask_index(self, src: str) -> pd.DataFrame:
        return self._index_of_shards(self.mask_shards(src))

    def inpaint_index(self, src: str, dst: str) -> pd.DataFrame:
        return self._index_of_shards(self.inpaint_shards(src, dst))

    def ig_table(self, src: str, dst: str) -> pd.DataFrame:
        return self.concat([p for _, p in self.ig_shards(src, dst)], shard=lambda p: self.rel(p))

    def seed_summary(self) -> dict | None:
        """summary.json of a dataset run over `seeds` (mean ± std per method), None where there is none
        or it cannot be read."""
        path = self.paths.path("seed_summary")
        try:
            return json.loads(path.read_text()) if path.exists() else None
        except (OSError, ValueError):
            return None

    def eval_report(self) -> dict:
        return json.loads(self.eval_json.read_text())

    def rehearsal(self) -> str | None:
        """The REHEARSAL line when eval.json says the run used `random:` models (ddb.evaluate), else None."""
        if not self.eval_json.exists():
            return None
        try:
            report = self.eval_report()
        except (OSError, ValueError):
            return None
        if not report.get("rehearsal"):
            return None
        refs = ", ".join(f"{key} {ref}" for key, ref in report.get("random_models", {}).items())
        return f"REHEARSAL ({refs}): random weights; it measures time and memory, its accuracies mean nothing"


def tar_members(path: Path) -> int:
    """PNG members of an image shard (read from the tar's headers, not from its index)."""
    import tarfile

    with tarfile.open(path) as tar:
        return sum(1 for m in tar.getmembers() if m.name.endswith(".png"))


# ---------------------------------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------------------------------

def fmt(value, digits: int = 3) -> str:
    """Numbers as the tables print them: ints plain, floats with ``digits`` decimals, NaN as '-'."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iu"):
        return str(int(value))
    if isinstance(value, float) or hasattr(value, "dtype"):
        value = float(value)
        if math.isnan(value):
            return "-"
        return f"{value:.{digits}f}"
    return str(value)


def pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f} %" if whole else "-"


def format_table(columns: list[str], rows: list[list], title: str | None = None) -> str:
    """A left-aligned text table (numbers right-aligned), with a dashed rule under the header."""
    cells = [[fmt(v) if not isinstance(v, str) else v for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    numeric = [bool(cells) and all(_is_number(r[i]) for r in cells) for i in range(len(columns))]

    def line(values):
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    out = [title] if title else []
    out += [line(columns), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def _is_number(text: str) -> bool:
    return bool(re.fullmatch(r"-|[-+]?\d+(\.\d+)?( %)?", text))


# ---------------------------------------------------------------------------------------------------
# The overview: one line per step
# ---------------------------------------------------------------------------------------------------

@dataclass
class StepSummary:
    step: str
    artifact: str
    rows: int | None = None
    images: int | None = None
    figure: str = NOT_RUN
    status: str = "missing"  # done | missing | partial | error
    data: dict = field(default_factory=dict)

    def as_row(self) -> list:
        return [self.step, self.artifact, "-" if self.rows is None else str(self.rows),
                "-" if self.images is None else str(self.images), self.figure]


def summarize(results: Results) -> list[StepSummary]:
    return [summarize_step(results, step) for step in STEP_NAMES]


def summarize_step(results: Results, step: str) -> StepSummary:
    function = _SUMMARIES[step]
    try:
        return function(results)
    except FileNotFoundError:
        return StepSummary(step, _ARTIFACT[step])
    except Exception as error:  # a malformed table: say so on its line, keep the others
        return StepSummary(step, _ARTIFACT[step], figure=f"unreadable: {type(error).__name__}: {error}",
                           status="error")


# the artifact each step's summary line names (ddb.steps, ddb.paths)
_STEP_ARTIFACT = {step.name: step.shows for step in inspected()}
# a folder artifact is shown with its trailing slash
_ARTIFACT = {step: ARTIFACTS[name] + ("" if Path(ARTIFACTS[name]).suffix else "/")
             for step, name in _STEP_ARTIFACT.items()}


def _require(path: Path) -> Path:
    if not Path(path).exists():
        raise FileNotFoundError(path)
    return path


def _summary_prepare_dataset(results: Results) -> StepSummary:
    manifest = results.table(_require(results.manifest))
    counts = manifest.groupby(["split", "group"]).size()
    splits = [s for s in ("train", "val", "test") if s in counts.index.get_level_values(0)]
    parts = []
    for split in splits:
        groups = counts[split]
        inner = ", ".join(f"{g} {int(n)}" for g, n in groups.items())
        parts.append(f"{split} {int(groups.sum())} ({inner})" if split == "train" else f"{split} {int(groups.sum())}")
    data = {split: {g: int(n) for g, n in counts[split].items()} for split in splits}
    return StepSummary("prepare_dataset", _ARTIFACT["prepare_dataset"], rows=len(manifest), figure=" · ".join(parts),
                       status="done", data={"groups": data})


def _summary_train_erm(results: Results) -> StepSummary:
    history = results.table(_require(results.erm_history))
    best = history.loc[history["val_worst_group_accuracy"].idxmax()]
    figure = (f"{len(history)} epochs · final loss {fmt(history['loss'].iloc[-1])} · best val WGA "
              f"{fmt(best['val_worst_group_accuracy'])} (epoch {int(best['epoch'])})")
    return StepSummary("train_erm", _ARTIFACT["train_erm"], rows=len(history), figure=figure, status="done",
                       data={"epochs": len(history), "best_val_wga": float(best["val_worst_group_accuracy"]),
                             "best_epoch": int(best["epoch"])})


def _summary_textual_inversion(results: Results) -> StepSummary:
    parts, rows, data, missing = [], 0, {}, []
    for cls in results.classes():
        loss_path = results.paths.path("ti_loss", cls=cls)
        if not loss_path.exists():
            missing.append(cls)
            continue
        loss = results.table(loss_path)
        samples_path = results.paths.path("ti_samples", cls=cls)
        images = len(results.table(samples_path)) if samples_path.exists() else None
        rows += len(loss)
        data[cls] = {"images": images, "steps": len(loss), "first_loss": float(loss["loss"].iloc[0]),
                     "last_loss": float(loss["loss"].iloc[-1])}
        parts.append(f"{cls}: {fmt(images)} images, {len(loss)} steps, loss {fmt(loss['loss'].iloc[0])}"
                     f"→{fmt(loss['loss'].iloc[-1])}")
    if not data:
        raise FileNotFoundError("textual_inversion")
    if missing:
        parts.append(f"{', '.join(missing)}: {NOT_RUN}")
    return StepSummary("textual_inversion", _ARTIFACT["textual_inversion"], rows=rows, figure=" · ".join(parts),
                       status="partial" if missing else "done", data=data)


def _summary_select_low_loss(results: Results) -> StepSummary:
    parts, rows, data, missing = [], 0, {}, []
    for cls in results.classes():
        if not results.low_loss(cls).exists():
            missing.append(cls)
            continue
        table = results.table(results.low_loss(cls))
        rows += len(table)
        data[cls] = {"k": len(table), "max_loss": float(table["loss"].max())}
        parts.append(f"{cls} K={len(table)} (loss ≤ {table['loss'].max():.3g})")
    if not data:
        raise FileNotFoundError("low_loss")
    if missing:
        parts.append(f"{', '.join(missing)}: {NOT_RUN}")
    return StepSummary("select_low_loss", _ARTIFACT["select_low_loss"], rows=rows, figure=" · ".join(parts),
                       status="partial" if missing else "done", data=data)


def _summary_mean_softmax(results: Results) -> StepSummary:
    psi = results.table(_require(results.psi))
    parts = [f"{r['class_name']} K={int(r['k'])} Ψ={r['psi']:.4f}" for r in psi.to_dict("records")]
    data = {str(r["class_name"]): {"k": int(r["k"]), "psi": float(r["psi"])} for r in psi.to_dict("records")}
    return StepSummary("mean_softmax", _ARTIFACT["mean_softmax"], rows=len(psi), figure=" · ".join(parts), status="done",
                       data=data)


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
    return StepSummary("mask", _ARTIFACT["mask"], rows=rows, images=images, figure=figure, status="done",
                       data=data)


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
    return StepSummary("inpaint", _ARTIFACT["inpaint"], rows=rows, images=images, figure=figure, status="done",
                       data=data)


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
    return StepSummary("ig_score", _ARTIFACT["ig_score"], rows=rows, figure=" · ".join(parts), status="done",
                       data=data)


def prune_counts(results: Results) -> pd.DataFrame:
    """One row per class pair: generated rows, kept, kept %, one column per reason, Ψ_src and P_dst."""
    records = []
    for src, dst in results.pairs():
        path = results.prune_table(src, dst)
        if not path.exists():
            continue
        table = results.table(path)
        counts = table["reason"].value_counts()
        kept = int(table["keep"].sum())
        records.append({"pair": f"{src}_to_{dst}", "source": src, "target": dst, "generated": len(table),
                        "kept": kept, "kept_percent": 100.0 * kept / len(table) if len(table) else float("nan"),
                        **{reason: int(counts.get(reason, 0)) for reason in REASONS[1:]},
                        "psi_source": float(table["psi_source"].iloc[0]) if len(table) else float("nan"),
                        "threshold": float(table["threshold"].iloc[0]) if len(table) else float("nan")})
    return pd.DataFrame(records, columns=["pair", "source", "target", "generated", "kept", "kept_percent",
                                          *REASONS[1:], "psi_source", "threshold"])


def _summary_prune(results: Results) -> StepSummary:
    counts = prune_counts(results)
    if counts.empty:
        raise FileNotFoundError("prune")
    total, kept = int(counts["generated"].sum()), int(counts["kept"].sum())
    reasons = " · ".join(f"{r} {int(counts[r].sum())}" for r in REASONS[1:])
    pairs = ", ".join(f"{r['source']}→{r['target']} {r['kept']}/{r['generated']}" for r in counts.to_dict("records"))
    figure = f"kept {kept} of {total} ({pct(kept, total)}) · {reasons} · {pairs}"
    data = {"generated": total, "kept": kept,
            **{r: int(counts[r].sum()) for r in REASONS[1:]},
            "pairs": {r["pair"]: {k: r[k] for k in ("generated", "kept", *REASONS[1:])}
                      for r in counts.to_dict("records")}}
    figure = _mark_candidate(results, figure, data)
    return StepSummary("prune", results.rel(results.prune_table("{src}", "{dst}")), rows=total, figure=figure,
                       status="done", data=data)


def _mark_candidate(results: Results, figure: str, data: dict) -> str:
    """A tuned run's prune and retrain lines are the selected candidate's: say which (in ``data`` too)."""
    if results.ddb_candidate:
        data["candidate"] = results.ddb_candidate
        return f"{figure} · tuned candidate {results.ddb_candidate}"
    return figure


def _summary_retrain(results: Results) -> StepSummary:
    history = results.table(_require(results.retrain_history))
    chosen = selected_epoch(history)  # the epoch retrain kept, as tune_select reads it
    figure = (f"{len(history)} epochs · selected epoch {chosen['epoch']} · val WGA "
              f"{fmt(chosen['val_worst_group_accuracy'])} · val mean {fmt(chosen['val_mean_accuracy'])}")
    data = {"epochs": len(history), "selected_epoch": chosen["epoch"],
            "val_wga": chosen["val_worst_group_accuracy"]}
    figure = _mark_candidate(results, figure, data)
    return StepSummary("retrain", results.rel(results.retrain_history), rows=len(history), figure=figure,
                       status="done", data=data)


def _summary_tune(results: Results) -> StepSummary:
    if not results.tune_dir.is_dir():  # most runs: the entry has no `tune` section
        return StepSummary("tune", _ARTIFACT["tune"], figure="no tune/ folder: P and γ as configured (no `tune` "
                           "section), or tuning has not started")
    table = results.table(_require(results.tune_candidates))
    chosen = table[table["selected"].astype(bool)].iloc[0]
    parts = [f"{r['candidate']} kept {int(r['kept_total'])} val WGA {fmt(r['val_worst_group_accuracy'])}"
             for r in table.sort_values("order").to_dict("records")]
    figure = (f"{len(table)} candidates, selected {chosen['candidate']} (val WGA "
              f"{fmt(chosen['val_worst_group_accuracy'])}, val mean {fmt(chosen['val_mean_accuracy'])}) · "
              + ", ".join(parts))
    data = {"selected": str(chosen["candidate"]),
            "candidates": {str(r["candidate"]): {"thresholds": [float(v) for v in r["thresholds"]],
                                                 "gammas": [float(v) for v in r["gammas"]],
                                                 "kept_total": int(r["kept_total"]),
                                                 "val_wga": float(r["val_worst_group_accuracy"]),
                                                 "val_mean": float(r["val_mean_accuracy"])}
                           for r in table.to_dict("records")}}
    return StepSummary("tune", _ARTIFACT["tune"], rows=len(table), figure=figure, status="done", data=data)


def dfr_selected(selection: pd.DataFrame) -> dict:
    """The selected row of dfr/selection.parquet (the C with the best select-half WGA)."""
    chosen = selection[selection["selected"].astype(bool)]
    return (chosen if len(chosen) else selection.loc[[selection["val_worst_group_accuracy"].idxmax()]]).iloc[0].to_dict()


def _dfr_subsamples(results: Results) -> int | None:
    if not results.dfr_coefficients.exists():
        return None
    parts = pd.read_parquet(results.dfr_coefficients, columns=["part", "subsample"])
    return int(parts.loc[parts["part"] == "subsample", "subsample"].nunique())


def _summary_dfr(results: Results) -> StepSummary:
    selection = results.table(_require(results.dfr_selection))
    chosen = dfr_selected(selection)
    parts = [f"C={chosen['C']:g} selected of {len(selection)} (select-half WGA {fmt(chosen['val_worst_group_accuracy'])}, "
             f"mean {fmt(chosen['val_mean_accuracy'])})"]
    data = {"selected_c": float(chosen["C"]), "val_wga": float(chosen["val_worst_group_accuracy"]),
            "val_mean_accuracy": float(chosen["val_mean_accuracy"]), "grid": [float(c) for c in selection["C"]]}
    if results.dfr_halves.exists():
        halves = results.table(results.dfr_halves)
        parts.append(f"halves fit {int(halves['n_fit'].sum())} (balanced {int(halves['n_fit_balanced'].sum())}) / "
                     f"select {int(halves['n_select'].sum())}")
        data["halves"] = {str(r["group"]): {k: int(r[k]) for k in ("n_val", "n_fit", "n_select", "n_fit_balanced")}
                          for r in halves.to_dict("records")}
    subsamples = _dfr_subsamples(results)
    if subsamples is not None:
        parts.append(f"{subsamples} balanced subsamples averaged")
        data["subsamples"] = subsamples
    return StepSummary("dfr", _ARTIFACT["dfr"], rows=len(selection), figure=" · ".join(parts), status="done",
                       data=data)


def _summary_evaluate(results: Results) -> StepSummary:
    report = results.eval_report()
    models = [m for m in eval_models(report) if m != "dfr"]  # ERM → DDB, the baseline DFR beside them
    rows = len(results.table(results.eval_table)) if results.eval_table.exists() else None
    parts = []
    for key, label in (("worst_group_accuracy", "WGA"), ("mean_accuracy", "mean"),
                       ("weighted_mean_accuracy", "weighted mean")):
        values = [report[m][key] for m in models]
        parts.append(f"{label} " + " → ".join(f"{m.upper()} {fmt(v)}" for m, v in zip(models, values))
                     if label == "WGA" else f"{label} " + " → ".join(fmt(v) for v in values))
        if "dfr" in report:
            parts[-1] += f" (DFR {fmt(report['dfr'][key])})"
    models = eval_models(report)
    data = {m: {k: report[m][k] for k in ("worst_group_accuracy", "mean_accuracy", "weighted_mean_accuracy")}
            for m in models}
    if report.get("rehearsal"):
        parts.insert(0, "REHEARSAL (random weights)")
        data["rehearsal"] = True
    return StepSummary("evaluate", _ARTIFACT["evaluate"], rows=rows, figure=" · ".join(parts), status="done", data=data)


def _summary_visualize(results: Results) -> StepSummary:
    folder = _require(results.report_dir)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(folder)
    pngs = [p for p in files if p.suffix == ".png"]
    tables = [p for p in files if p.suffix in (".html", ".csv")]
    names = ", ".join(p.relative_to(folder).as_posix() for p in pngs)
    figure = f"{len(pngs)} PNG ({names}) · {len(tables)} tables"
    return StepSummary("visualize", _ARTIFACT["visualize"], rows=None, images=len(pngs), figure=figure, status="done",
                       data={"files": [results.rel(p) for p in files]})


# each step's overview line (keys: the steps of ddb.steps that inspect shows)
_SUMMARIES = {
    "prepare_dataset": _summary_prepare_dataset, "train_erm": _summary_train_erm,
    "textual_inversion": _summary_textual_inversion, "select_low_loss": _summary_select_low_loss,
    "mean_softmax": _summary_mean_softmax, "mask": _summary_mask, "inpaint": _summary_inpaint,
    "ig_score": _summary_ig_score, "prune": _summary_prune, "retrain": _summary_retrain, "tune": _summary_tune,
    "dfr": _summary_dfr, "evaluate": _summary_evaluate, "visualize": _summary_visualize,
}


def format_overview(results: Results, summaries: list[StepSummary]) -> str:
    classes = results.classes()
    title = f"{results.root}: dataset {results.name}" + (f", classes {', '.join(classes)}" if classes else "")
    table = format_table(["step", "artifact", "rows", "images", "key figure"], [s.as_row() for s in summaries])
    rehearsal = results.rehearsal()
    text = f"{title}\n{rehearsal}\n\n{table}" if rehearsal else f"{title}\n\n{table}"
    if (summary := results.seed_summary()) is not None:  # a dataset run over `seeds`: the table of the paper
        from .summary import format_summary

        text += (f"\n\n{format_summary(summary)}\n(summary.json; the steps above are the config seed's run, the "
                 f"other seeds' runs are {results.root}/seed-<s>/)")
    return text


# ---------------------------------------------------------------------------------------------------
# One step's table
# ---------------------------------------------------------------------------------------------------

def step_table(results: Results, step: str) -> tuple[str, list[str], list[list]] | None:
    """(title, columns, rows) of ``step``, or None when its artifact is not there yet."""
    try:
        return _TABLES[step](results)
    except FileNotFoundError:
        return None


def _table_prepare_dataset(results):
    manifest = results.table(_require(results.manifest))
    counts = manifest.groupby(["group", "split"]).size().unstack(fill_value=0)
    splits = [s for s in ("train", "val", "test") if s in counts.columns]
    labels = manifest.groupby("group")[["y", "class_name", "spurious"]].first() if "spurious" in manifest else None
    rows = []
    for group, row in counts.iterrows():
        meta = labels.loc[group] if labels is not None else {}
        rows.append([group, int(meta["y"]) if len(meta) else "-", str(meta.get("spurious", "-")),
                     *[int(row[s]) for s in splits], int(row[splits].sum())])
    rows.append(["total", "", "", *[int(counts[s].sum()) for s in splits], int(counts[splits].values.sum())])
    return ("group counts per split (data/manifest.parquet)", ["group", "y", "spurious", *splits, "all"], rows)


def _history_rows(history: pd.DataFrame):
    columns = [c for c in history.columns]
    rows = [[("*" if v else "") if c == "selected" else v for c, v in zip(columns, rec)]
            for rec in history.itertuples(index=False)]
    return columns, rows


def _table_train_erm(results):
    history = results.table(_require(results.erm_history))
    columns, rows = _history_rows(history)
    return ("ERM training per epoch (erm/history.parquet)", columns, rows)


def _table_textual_inversion(results):
    rows = []
    for cls in results.classes():
        loss_path = results.paths.path("ti_loss", cls=cls)
        if not loss_path.exists():
            rows.append([cls, NOT_RUN, "", "", "", "", ""])
            continue
        loss = results.table(loss_path)
        samples_path = results.paths.path("ti_samples", cls=cls)
        samples = results.table(samples_path) if samples_path.exists() else pd.DataFrame()
        groups = ", ".join(sorted(samples["group"].unique())) if "group" in samples else "-"
        rows.append([cls, len(samples), groups, len(loss), float(loss["loss"].iloc[0]), float(loss["loss"].iloc[-1]),
                     float(loss["loss"].min())])
    if all(r[1] == NOT_RUN for r in rows):
        raise FileNotFoundError("textual_inversion")
    return ("textual inversion per class (textual_inversion/{cls}/)",
            ["class", "images", "groups", "steps", "first loss", "last loss", "min loss"], rows)


def _table_select_low_loss(results):
    rows = []
    for cls in results.classes():
        if not results.low_loss(cls).exists():
            rows.append([cls, NOT_RUN, "", "", ""])
            continue
        table = results.table(results.low_loss(cls))
        rows.append([cls, len(table), float(table["loss"].max()), float(table["softmax"].mean()),
                     float(table["softmax"].min())])
    if all(r[1] == NOT_RUN for r in rows):
        raise FileNotFoundError("low_loss")
    return ("K lowest per-sample losses per class (low_loss/{cls}.parquet)",
            ["class", "K", "max loss", "mean softmax", "min softmax"], rows)


def _table_mean_softmax(results):
    psi = results.table(_require(results.psi))
    rows = [[int(r["class"]), r["class_name"], int(r["k"]), float(r["psi"])] for r in psi.to_dict("records")]
    return ("Ψ: mean softmax of the K low-loss samples (psi.parquet)", ["class", "name", "K", "psi"], rows)


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


def _table_prune(results):
    counts = prune_counts(results)
    if counts.empty:
        raise FileNotFoundError("prune")
    rows = [[f"{r['source']}→{r['target']}", r["generated"], r["kept"], f"{r['kept_percent']:.1f} %",
             *[r[reason] for reason in REASONS[1:]], r["psi_source"], r["threshold"]]
            for r in counts.to_dict("records")]
    total, kept = int(counts["generated"].sum()), int(counts["kept"].sum())
    rows.append(["total", total, kept, pct(kept, total), *[int(counts[r].sum()) for r in REASONS[1:]], "", ""])
    return (f"pruning verdicts per class pair and reason ({results.rel(results.prune_table('{src}', '{dst}'))})",
            ["pair", "generated", "kept", "kept %", *REASONS[1:], "Ψ_src", "P_dst"], rows)


def _table_retrain(results):
    history = results.table(_require(results.retrain_history))
    columns, rows = _history_rows(history)
    return (f"retraining per epoch ({results.rel(results.retrain_history)}; * = epoch selected by val WGA)",
            columns, rows)


def tune_rows(table: pd.DataFrame, classes: list[str]) -> tuple[list[str], list[list]]:
    """The tuning table (tune/candidates.parquet): one row per candidate in the order given, with P, γ, the
    kept generated images per class (of those generated), validation WGA and mean at the kept epoch, and
    the selected one marked with *."""
    values = lambda vs: ", ".join(f"{float(v):g}" for v in vs)
    classes = [c for c in classes if f"kept_{c}" in table] or [
        c.removeprefix("kept_") for c in table.columns if c.startswith("kept_") and c != "kept_total"]
    columns = ["candidate", "P", "γ", *[f"kept {c}" for c in classes], "kept", "epoch", "val WGA", "val mean",
               "rank", "selected"]
    rows = []
    for r in table.sort_values("order").to_dict("records"):
        kept = [f"{int(r[f'kept_{c}'])}/{int(r[f'generated_{c}'])}" if f"generated_{c}" in r
                else int(r[f"kept_{c}"]) for c in classes]
        rows.append([str(r["candidate"]), values(r["thresholds"]), values(r["gammas"]), *kept, int(r["kept_total"]),
                     int(r["epoch"]), float(r["val_worst_group_accuracy"]), float(r["val_mean_accuracy"]),
                     int(r["rank"]), "*" if r["selected"] else ""])
    return columns, rows


def _table_tune(results):
    table = results.table(_require(results.tune_candidates))
    columns, rows = tune_rows(table, results.classes())
    return ("P and γ tuned on validation (tune/candidates.parquet; * = selected: best val WGA, ties: fewer kept "
            "generated images, then the order given; only it is evaluated on test)", columns, rows)


def eval_rows(report: dict, table: pd.DataFrame | None = None) -> tuple[list[str], list[list]]:
    """The ERM / DFR / DDB table: one row per group, then WGA, mean and train-weighted mean; Δ = DDB − ERM."""
    models = eval_models(report)
    delta = (lambda values: fmt(values[models.index("ddb")] - values[models.index("erm")])  # noqa: E731
             if {"erm", "ddb"} <= set(models) else "-")
    groups = sorted(report[models[0]]["group_accuracy"])
    sizes = {}
    if table is not None and len(table):
        sizes = table.groupby("group")[["n_train", "n_test"]].first().to_dict("index")
    rows = []
    for g in groups:
        values = [report[m]["group_accuracy"][g] for m in models]
        worst = [report[m]["group_accuracy"][g] == report[m]["worst_group_accuracy"] for m in models]
        rows.append([g, sizes.get(g, {}).get("n_train", "-"), sizes.get(g, {}).get("n_test", "-"),
                     *[fmt(v) + (" (worst)" if w else "") for v, w in zip(values, worst)], delta(values)])
    for key, label in (("worst_group_accuracy", "WORST-GROUP ACCURACY"), ("mean_accuracy", "mean accuracy"),
                       ("weighted_mean_accuracy", "train-weighted mean accuracy")):
        values = [report[m][key] for m in models]
        rows.append([label, "", "", *[fmt(v) for v in values], delta(values)])
    return ["group", "n_train", "n_test", *[m.upper() for m in models], "Δ"], rows


def eval_title(report: dict) -> str:
    """"ERM vs DDB", or "ERM, DFR and DDB" where eval.json has the DFR baseline."""
    names = [m.upper() for m in eval_models(report)]
    return " vs ".join(names) if len(names) < 3 else f"{', '.join(names[:-1])} and {names[-1]}"


def _table_dfr(results):
    selection = results.table(_require(results.dfr_selection))
    groups = [c.removeprefix("accuracy_") for c in selection.columns if c.startswith("accuracy_")]
    rows = [[("*" if r["selected"] else ""), float(r["C"]), float(r["val_worst_group_accuracy"]),
             float(r["val_mean_accuracy"]), int(r["nonzero_coefficients"]), *[float(r[f"accuracy_{g}"]) for g in groups]]
            for r in selection.to_dict("records")]
    title = ("DFR: C chosen by worst-group accuracy on the select half of validation, fit on a group-balanced "
             "subsample of the fit half (dfr/selection.parquet; * = selected)")
    if results.dfr_halves.exists():
        halves = results.table(results.dfr_halves)
        title += "\nhalves per group (dfr/halves.parquet): " + ", ".join(
            f"{r['group']} {int(r['n_fit'])} fit ({int(r['n_fit_balanced'])} balanced) / {int(r['n_select'])} select"
            for r in halves.to_dict("records"))
        title += f"; the final model: {int(halves['n_final_balanced'].iloc[0])} per group"
    subsamples = _dfr_subsamples(results)
    if subsamples is not None:
        title += f", {subsamples} balanced subsamples of the whole split averaged (dfr/coefficients.parquet)"
    return title, ["", "C", "val WGA", "val mean", "nonzero coef", *groups], rows


def _table_evaluate(results):
    report = results.eval_report() if results.eval_json.exists() else None
    if report is None:
        raise FileNotFoundError(_ARTIFACT["evaluate"])
    table = results.table(results.eval_table) if results.eval_table.exists() else None
    columns, rows = eval_rows(report, table)
    title = (f"test accuracy, {eval_title(report)} ({report.get('dataset', results.name)}; eval.json, eval.parquet; "
             "Δ = DDB − ERM)")
    return (f"{results.rehearsal()}\n{title}" if report.get("rehearsal") else title), columns, rows


def _table_visualize(results):
    folder = _require(results.report_dir)
    rows = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        size = "-"
        if path.suffix == ".png":
            from PIL import Image

            with Image.open(path) as image:
                size = f"{image.width}x{image.height}"
        rows.append([results.rel(path), path.stat().st_size, size])
    if not rows:
        raise FileNotFoundError(folder)
    return (f"files written by visualize ({_ARTIFACT['visualize']})", ["file", "bytes", "pixels"], rows)


# each step's --step table (keys: as _SUMMARIES)
_TABLES = {
    "prepare_dataset": _table_prepare_dataset, "train_erm": _table_train_erm,
    "textual_inversion": _table_textual_inversion, "select_low_loss": _table_select_low_loss,
    "mean_softmax": _table_mean_softmax, "mask": _table_mask, "inpaint": _table_inpaint,
    "ig_score": _table_ig_score, "prune": _table_prune, "retrain": _table_retrain, "tune": _table_tune,
    "dfr": _table_dfr, "evaluate": _table_evaluate, "visualize": _table_visualize,
}


def format_step(results: Results, step: str) -> str:
    table = step_table(results, step)
    if table is None:
        return f"{step}: {NOT_RUN} ({_ARTIFACT[step]} not found under {results.root})"
    title, columns, rows = table
    return format_table(columns, rows, title=f"{step}: {title}\n")


# ---------------------------------------------------------------------------------------------------
# One sample through every step
# ---------------------------------------------------------------------------------------------------

class SampleNotFound(LookupError):
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
            match = re.fullmatch(rf"(.+)_to_{re.escape(dst)}(_\d+)?", sample_id)
            if match and _find_row(manifest, "sample_id", match[1]):
                source_id, only_dst, only_gid = match[1], dst, sample_id
                break
        else:
            if manifest.empty:
                raise SampleNotFound(f"{results.manifest} does not exist yet (prepare_dataset {NOT_RUN}), "
                                     f"so sample {sample_id!r} cannot be looked up")
            raise SampleNotFound(f"sample {sample_id!r} is neither in {results.rel(results.manifest)} nor a "
                                 f"generated id (<source id>_to_<class>) of one; ids look like "
                                 f"{manifest['sample_id'].iloc[0]!r}")
    row = _find_row(manifest, "sample_id", source_id)
    trace = Trace(sample_id, source_id)
    y = int(row["y"])
    cls = classes[y] if y < len(classes) else str(y)
    trace.add("prepare_dataset", _ARTIFACT["prepare_dataset"],
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
        trace.add("textual_inversion", _ARTIFACT["textual_inversion"].format(cls=cls), NOT_RUN)

    if results.low_loss(cls).exists():
        low = results.table(results.low_loss(cls))
        hit = _find_row(low, "sample_id", source_id)
        trace.add("select_low_loss", results.rel(results.low_loss(cls)),
                  f"rank {int(hit['rank'])} of K={len(low)} · loss {hit['loss']:.3g} · softmax {hit['softmax']:.4f}"
                  if hit else f"not among the K={len(low)} lowest-loss samples of {cls}")
    else:
        trace.add("select_low_loss", _ARTIFACT["select_low_loss"].format(cls=cls), NOT_RUN)

    psi = results.table(results.psi) if results.psi.exists() else None
    if psi is not None:
        value = psi.loc[psi["class"] == y, "psi"]
        trace.add("mean_softmax", _ARTIFACT["mean_softmax"],
                  f"Ψ of its class {cls} = {float(value.iloc[0]):.4f}" if len(value) else f"no Ψ for class {y}")
    else:
        trace.add("mean_softmax", _ARTIFACT["mean_softmax"], NOT_RUN)

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
        trace.add("mask", _ARTIFACT["mask"].format(src=cls, n="*"), NOT_RUN)

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
    for gid in gids or [f"{source_id}_to_{dst}"]:  # ddb.inpainting.generated_id, without importing torch
        _trace_generated(results, trace, gid, src, dst)


def _trace_generated(results: Results, trace: Trace, gid: str, src: str, dst: str) -> None:
    arrow = f"[{src}→{dst}] "
    shards = results.inpaint_shards(src, dst)
    if shards:
        gen = _find_row(results.inpaint_index(src, dst), "sample_id", gid)
        if gen is None:
            trace.add("inpaint", _folder(results, "inpaint_tar", src=src, dst=dst), arrow + f"{gid} not in the index")
        elif gen["has_image"]:
            trace.add("inpaint", gen["shard"], arrow + f"{gid}.png · label {dst} (y {int(gen['y'])}) · "
                                               f"prompt {gen['prompt']!r} · seed {int(gen['seed'])}")
        else:
            trace.add("inpaint", gen["shard"], arrow + f"{gid}: no image (no mask to inpaint)")
    else:
        trace.add("inpaint", _ARTIFACT["inpaint"].format(src=src, dst=dst, n="*"), arrow + NOT_RUN)

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
        trace.add("ig_score", _ARTIFACT["ig_score"].format(src=src, dst=dst, n="*"), arrow + NOT_RUN)

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
        grid = pd.read_csv(shown)
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
        trace.add("evaluate", _ARTIFACT["evaluate"], f"its group {row['group']}: test accuracy " + " → ".join(parts) + baseline)


def format_trace(results: Results, trace: Trace) -> str:
    title = f"sample {trace.sample_id}" + (f" (generated from {trace.source_id})"
                                           if trace.source_id != trace.sample_id else "") + f" in {results.root}"
    return format_table(["step", "artifact", "what"], [list(line) for line in trace.lines], title=title + "\n")


# ---------------------------------------------------------------------------------------------------
# Entry points used by the CLI
# ---------------------------------------------------------------------------------------------------

class NotAResultsFolder(ValueError):
    pass


def _folder(results: Results, name: str, **wildcards) -> str:
    """The folder of artifact ``name`` as a trace shows it: relative to the run, with a trailing slash."""
    return results.rel(results.paths.folder(name, **wildcards)) + "/"


def _is_run(folder: Path) -> bool:
    """Whether ``folder`` is a run's folder: its dataset has been prepared there."""
    return RunPaths(folder).folder("manifest").is_dir()


def _has_artifacts(folder: Path) -> bool:
    """Whether any step has written into ``folder`` (the top-level entry of any artifact exists)."""
    return any((folder / Path(template).parts[0]).exists() for template in ARTIFACTS.values())


def open_results(path: str | Path) -> Results:
    """A Results for ``path``; NotAResultsFolder (one line) when it does not exist or is the parent folder."""
    path = Path(path)
    if not path.exists():
        raise NotAResultsFolder(f"{path}: no such results folder (run snakemake first, or check the path)")
    if not path.is_dir():
        raise NotAResultsFolder(f"{path}: not a folder; pass a dataset's results folder such as results/demo")
    records = path.resolve().name
    if records in ("logs", "benchmarks") and (path / "prepare_dataset").is_dir():  # <results>/logs/<step>/..., not a dataset's folder
        datasets = sorted(p.name for p in path.parent.iterdir() if p.is_dir() and _is_run(p))
        raise NotAResultsFolder(f"{path} holds the jobs' {records} ({path}/<step>/<dataset>...), not a dataset's "
                                "results: pass a dataset's results folder"
                                + (f", e.g. {path.parent / datasets[0]}" if datasets else ""))
    if not _has_artifacts(path):
        inner = sorted(p.name for p in path.iterdir() if p.is_dir() and _is_run(p))
        if inner:
            raise NotAResultsFolder(f"{path} holds the results of {len(inner)} dataset(s): pass one of "
                                    + ", ".join(str(path / name) for name in inner))
    return Results(path)


def overview_json(results: Results, summaries: list[StepSummary]) -> dict:
    return {"results": str(results.root), "dataset": results.name, "classes": results.classes(),
            "rehearsal": results.rehearsal() is not None, "steps": [asdict(s) for s in summaries],
            "seed_summary": results.seed_summary()}
