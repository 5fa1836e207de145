"""How long CelebA's manifest takes at full scale, in each of the three layouts the adapter reads.

Writes a CelebA-shaped tree (202,599 rows by default: 40 random ±1 attributes, the published
train/val/test proportions, one empty ``.jpg`` per row, which is enough because images are listed,
not opened) into a temporary folder, then times ``ddb.datasets.build_manifest`` for the published
text files, the CSV mirror (images nested in ``img_align_celeba/img_align_celeba/``) and the single
CSV. Prints figures only; it never passes or fails on time.

    python benchmarks/manifest_celeba.py [--rows N] [--repeat R]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from ddb.config import validate_config  # noqa: E402
from ddb.datasets import build_manifest, format_group_table  # noqa: E402

ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young").split()
PUBLISHED_SPLIT_SIZES = (162770, 19867, 19962)  # train, val, test of the real list_eval_partition.txt


def celeba_like_table(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = np.char.add(np.char.zfill(np.arange(1, rows + 1).astype(str), 6), ".jpg")
    shares = np.asarray(PUBLISHED_SPLIT_SIZES) / sum(PUBLISHED_SPLIT_SIZES)
    bounds = np.round(np.cumsum(shares) * rows).astype(int)
    partition = np.searchsorted(bounds, np.arange(rows), side="right")  # sorted blocks, like the real file
    values = rng.choice(np.array([-1, 1], dtype=np.int8), size=(rows, len(ATTRIBUTES)))
    table = pd.DataFrame(values, columns=ATTRIBUTES)
    table.insert(0, "image_id", ids)
    table["partition"] = partition
    return table


def write_published(root: Path, table: pd.DataFrame) -> None:
    """The official aligned text: ``000001.jpg -1  1  1 ...`` (each value padded to two characters)."""
    lines = table["image_id"].to_numpy().astype(str)
    padded = {-1: "-1", 1: " 1"}
    for name in ATTRIBUTES:
        lines = np.char.add(np.char.add(lines, " "), np.where(table[name].to_numpy() == 1, padded[1], padded[-1]))
    with open(root / "list_attr_celeba.txt", "w") as handle:
        handle.write(f"{len(table)}\n{' '.join(ATTRIBUTES)} \n")
        handle.write("\n".join(lines.tolist()) + "\n")
    partition_lines = np.char.add(np.char.add(table["image_id"].to_numpy().astype(str), " "),
                                  table["partition"].to_numpy().astype(str))
    (root / "list_eval_partition.txt").write_text("\n".join(partition_lines.tolist()) + "\n")


def write_mirror(root: Path, table: pd.DataFrame) -> None:
    table[["image_id", *ATTRIBUTES]].to_csv(root / "list_attr_celeba.csv", index=False)
    table[["image_id", "partition"]].to_csv(root / "list_eval_partition.csv", index=False)


def write_single(root: Path, table: pd.DataFrame) -> None:
    single = pd.DataFrame({"image_id": table["image_id"], "Male": (table["Male"] == 1).astype(int),
                           "Blond_Hair": (table["Blond_Hair"] == 1).astype(int), "split": table["partition"]})
    single.to_csv(root / "metadata.csv", index=False)


LAYOUTS = {
    # name -> (writer, image folder under the root)
    "published txt": (write_published, "img_align_celeba"),
    "csv mirror (nested images)": (write_mirror, "img_align_celeba/img_align_celeba"),
    "single csv": (write_single, "img_align_celeba"),
}


def make_images(folder: Path, table: pd.DataFrame) -> None:
    folder.mkdir(parents=True)
    for name in table["image_id"]:
        with open(folder / name, "wb"):
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=202599,
                        help="rows (images) of the fake CelebA (default: the real count)")
    parser.add_argument("--repeat", type=int, default=3, help="timed builds per layout (the best and mean are printed)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ddb-celeba-bench-") as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        table = celeba_like_table(args.rows)
        images = tmp / "images"
        make_images(images, table)  # one shared folder of empty files; each layout links to it
        roots = {}
        for index, (name, (writer, image_folder)) in enumerate(LAYOUTS.items()):
            root = tmp / f"layout{index}"
            (root / image_folder).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(images, root / image_folder, target_is_directory=True)
            writer(root, table)
            roots[name] = root
        print(f"wrote {args.rows} rows x {len(LAYOUTS)} layouts in {time.perf_counter() - started:.1f} s ({tmp})")

        print(f"\n{'layout':<28} {'rows':>8} {'best s':>8} {'mean s':>8}")
        manifest = None
        for name, root in roots.items():
            cfg = validate_config({"datasets": {"celeba": {"format": "celeba", "root": str(root)}},
                                   "targets": ["celeba"]})["datasets"]["celeba"]
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                manifest = build_manifest("celeba", cfg, seed=0)
                times.append(time.perf_counter() - start)
            print(f"{name:<28} {len(manifest):>8} {min(times):>8.2f} {np.mean(times):>8.2f}")
        print("\ngroup x split counts of the last manifest (random attributes, so not the paper's):")
        print(format_group_table(manifest))


if __name__ == "__main__":
    main()
