"""The artifacts of one run folder (``results/NAME``, or ``results/NAME/seed-<s>``) and what is there now.

:class:`Results` finds every artifact through :mod:`ddb.paths` and reads it through :mod:`ddb.storage.reading`
(a missing file is a FileNotFoundError, a damaged one a DDBError naming the file and the rule that remakes
it). The helpers below it read what both ``ddb inspect`` and the report show (pruning counts per pair, the
DFR choice, the models of eval.json). Nothing here imports torch, needs a config or the Snakefile: only the
folder (the artifact layout is in ``docs/artifacts.md``).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import pandas as pd

from ..errors import DDBError
from ..paths import ARTIFACTS, RunPaths, run_of_folder
from ..storage.reading import read_json, read_parquet
from .schema import MODELS, REASONS


def eval_models(report: dict) -> list[str]:
    """The models of an eval.json in table order: erm, dfr (where its rule ran), ddb."""
    return [m for m in MODELS if m in report]


def require(path: Path) -> Path:
    """``path`` if it exists; FileNotFoundError (the step has not run yet) otherwise."""
    if not Path(path).exists():
        raise FileNotFoundError(path)
    return path


def rehearsal_line(report: dict) -> str | None:
    """The REHEARSAL line of an eval.json that says the run used `random:` models (ddb.evaluate), else None."""
    if not report.get("rehearsal"):
        return None
    refs = ", ".join(f"{key} {ref}" for key, ref in report.get("random_models", {}).items())
    return f"REHEARSAL ({refs}): random weights; it measures time and memory, its accuracies mean nothing"


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
                name = read_json(self.tune_selection).get("selected")
        except (DDBError, AttributeError):
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
            try:  # a damaged table is reported on its step's line; the classes then come from elsewhere
                frame = self.table(self.manifest)
                if "class_name" in frame:
                    pairs = frame[["y", "class_name"]].drop_duplicates().sort_values("y")
                    classes = pairs["class_name"].astype(str).tolist()
            except (FileNotFoundError, DDBError):
                pass
            if not classes:
                try:
                    classes = self.table(self.psi).sort_values("class")["class_name"].astype(str).tolist()
                except (FileNotFoundError, DDBError):
                    pass
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
            self._tables[path] = read_parquet(require(path))  # missing: "not run yet"; damaged: a DDBError
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

    def shard_images(self, tar: Path) -> set[str]:
        """The sample ids with a PNG in the shard ``tar``; a DDBError naming it if it is truncated."""
        from ..storage.shards import ImageShard

        return set(ImageShard(tar).ids())

    def seed_summary(self) -> dict | None:
        """summary.json of a dataset run over `seeds` (mean ± std per method), None where there is none;
        a DDBError where it cannot be read."""
        path = self.paths.path("seed_summary")
        return read_json(path) if path.exists() else None

    def eval_report(self) -> dict:
        return read_json(require(self.eval_json))

    def rehearsal(self) -> str | None:
        """The REHEARSAL line when eval.json says the run used `random:` models (ddb.evaluate), else None."""
        if not self.eval_json.exists():
            return None
        try:
            report = self.eval_report()
        except DDBError:  # the evaluate line says so
            return None
        return rehearsal_line(report)


def tar_members(path: Path) -> int:
    """PNG members of an image shard (read from the tar's headers, not from its index); a DDBError naming
    the shard where it is truncated or corrupt."""
    from ..storage.shards import ImageShard

    return len(ImageShard(path))


def prune_counts_of(tables: list[tuple[str, str, pd.DataFrame]]) -> pd.DataFrame:
    """One row per (src, dst, prune table): generated rows, kept, kept %, one column per reason, Ψ_src and
    P_dst."""
    records = []
    for src, dst, table in tables:
        counts = table["reason"].value_counts()
        kept = int(table["keep"].sum())
        records.append({"pair": f"{src}_to_{dst}", "source": src, "target": dst, "generated": len(table),
                        "kept": kept, "kept_percent": 100.0 * kept / len(table) if len(table) else float("nan"),
                        **{reason: int(counts.get(reason, 0)) for reason in REASONS[1:]},
                        "psi_source": float(table["psi_source"].iloc[0]) if len(table) else float("nan"),
                        "threshold": float(table["threshold"].iloc[0]) if len(table) else float("nan")})
    return pd.DataFrame(records, columns=["pair", "source", "target", "generated", "kept", "kept_percent",
                                          *REASONS[1:], "psi_source", "threshold"])


def prune_counts(results: Results) -> pd.DataFrame:
    """:func:`prune_counts_of` the prune tables of DDB's model in ``results`` (with tuning: the selected
    candidate's), one row per class pair in class order."""
    tables = []
    for src, dst in results.pairs():
        path = results.prune_table(src, dst)
        if path.exists():
            tables.append((src, dst, results.table(path)))
    return prune_counts_of(tables)


def dfr_selected(selection: pd.DataFrame) -> dict:
    """The selected row of dfr/selection.parquet (the C with the best select-half WGA)."""
    chosen = selection[selection["selected"].astype(bool)]
    return (chosen if len(chosen) else selection.loc[[selection["val_worst_group_accuracy"].idxmax()]]).iloc[0].to_dict()


def dfr_subsamples(results: Results) -> int | None:
    """How many balanced subsamples DFR's final model averages (dfr/coefficients.parquet), None without it."""
    if not results.dfr_coefficients.exists():
        return None
    parts = read_parquet(results.dfr_coefficients, ["part", "subsample"])
    return int(parts.loc[parts["part"] == "subsample", "subsample"].nunique())


# ---------------------------------------------------------------------------------------------------
# Opening a folder
# ---------------------------------------------------------------------------------------------------

class NotAResultsFolder(DDBError):
    """The path given is no run's folder: missing, a file, the logs, or the folder of several runs."""

    def __init__(self, path: str | Path, problem: str):
        super().__init__(path, problem)


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
        raise NotAResultsFolder(path, "no such results folder (run snakemake first, or check the path)")
    if not path.is_dir():
        raise NotAResultsFolder(path, "not a folder; pass a dataset's results folder such as results/demo")
    records = path.resolve().name
    if records in ("logs", "benchmarks") and (path / "prepare_dataset").is_dir():  # <results>/logs/<step>/..., not a dataset's folder
        datasets = sorted(p.name for p in path.parent.iterdir() if p.is_dir() and _is_run(p))
        raise NotAResultsFolder(path, f"holds the jobs' {records} ({path}/<step>/<dataset>...), not a dataset's "
                                "results: pass a dataset's results folder"
                                + (f", e.g. {path.parent / datasets[0]}" if datasets else ""))
    if not _has_artifacts(path):
        inner = sorted(p.name for p in path.iterdir() if p.is_dir() and _is_run(p))
        if inner:
            raise NotAResultsFolder(path, f"holds the results of {len(inner)} dataset(s): pass one of "
                                    + ", ".join(str(path / name) for name in inner))
    return Results(path)
