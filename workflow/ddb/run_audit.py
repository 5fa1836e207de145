"""What in a run's folder is damaged, and what is no longer part of the config (``ddb inspect --verify``
and the overview's list of leftover folders).

Every artifact of the run is read back through :mod:`ddb.storage.reading` (models and every tuning
candidate's files included), so a damaged one is reported as a job reading it would report it: the
file, what is wrong, and the rule that remakes it. Nothing is deleted here. torch is imported only when a
model is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import DDBError
from .paths import ARTIFACTS, SEED_FOLDER, RunPaths
from .storage.reading import load_checkpoint, read_csv, read_json, read_parquet, read_png, safetensors_keys
from .storage.remake import remake_hint


@dataclass
class Damaged:
    path: Path
    problem: str
    fix: str | None


def artifact_files(paths: RunPaths) -> list[Path]:
    """Every artifact file of the run that exists, in the order of :data:`ddb.paths.ARTIFACTS`."""
    found: list[Path] = []
    for name, template in ARTIFACTS.items():
        if Path(template).suffix:  # folder artifacts (report/, tune/{cand}) hold files listed on their own
            found += [path for path in paths.glob(name) if path not in found]
    return found


def read_artifact(path: Path) -> None:
    """Read ``path`` fully, as the step that uses it does; a DDBError if it is damaged."""
    suffix = path.suffix
    if suffix == ".parquet":
        read_parquet(path)
    elif suffix == ".json":
        read_json(path)
    elif suffix == ".pt":
        load_checkpoint(path)
    elif suffix == ".png":
        read_png(path)
    elif suffix == ".tar":
        from .storage.shards import ImageShard

        shard = ImageShard(path)
        for sample_id in shard.ids():
            shard.image(sample_id)
    elif suffix == ".safetensors":
        safetensors_keys(path)
    elif suffix == ".csv":
        read_csv(path)
    else:
        try:
            path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise DDBError(path, f"cannot be read ({error})", remake_hint(path)) from error


def verify_run(paths: RunPaths) -> tuple[int, list[Damaged]]:
    """(how many artifacts were read, the damaged ones)."""
    files = artifact_files(paths)
    damaged = []
    for path in files:
        try:
            read_artifact(path)
        except DDBError as error:
            damaged.append(Damaged(path, error.problem, error.fix))
    return len(files), damaged


def format_verification(paths: RunPaths, read: int, damaged: list[Damaged]) -> str:
    if not damaged:
        return f"{paths.root}: all {read} artifact(s) read back whole"
    lines = [f"{paths.root}: {len(damaged)} of {read} artifact(s) cannot be read:"]
    for entry in damaged:
        lines.append(f"  {entry.path.relative_to(paths.root).as_posix()}: {entry.problem}")
        if entry.fix:
            lines.append(f"    fix: {entry.fix}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# Leftovers of an earlier config
# ---------------------------------------------------------------------------------------------------

_SEED_FOLDER = re.compile(SEED_FOLDER.format(seed=r"(\d+)"))


def leftover_folders(paths: RunPaths) -> list[tuple[Path, str]]:
    """Folders of the run that the current config no longer makes, with why: tuning candidates that
    tune/candidates.parquet (written by tune_select from the config's `tune` section) does not list, and
    ``seed-<s>`` folders of seeds summary.json (written by seed_summary from `seeds`) does not list. A
    record that is missing or unreadable judges nothing (the overview reports the unreadable one)."""
    leftovers = []
    candidates = _listed(lambda: read_parquet(paths.path("tune_candidates"))["candidate"].astype(str).tolist(),
                         paths.path("tune_candidates"))
    if candidates is not None:
        for wildcards, folder in paths.find("tune_candidate_dir"):
            if wildcards["cand"] not in candidates:
                leftovers.append((folder, "a tuning candidate not in tune/candidates.parquet (the config's `tune`)"))
    seeds = _listed(lambda: [int(s) for s in read_json(paths.path("seed_summary"))["seeds"]],
                    paths.path("seed_summary"))
    if seeds is not None:
        for folder in sorted(paths.root.iterdir()):
            if folder.is_dir() and (match := _SEED_FOLDER.fullmatch(folder.name)) and int(match[1]) not in seeds:
                leftovers.append((folder, f"seed {match[1]} is not among the seeds of summary.json {seeds}"))
    return leftovers


def _listed(read, path: Path) -> list | None:
    if not path.exists():
        return None
    try:
        return read()
    except (DDBError, KeyError, TypeError, ValueError):
        return None
