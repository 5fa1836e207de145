"""Rule visualize: grids, curves and tables of what DDB did, under results/{ds}/report/."""
from collections import defaultdict
from pathlib import Path

from ddb.paths import RunPaths, run_folder_of, wildcards_of
from ddb.scripting import device, run_step
from ddb.visualize import visualize_dataset


def by_class_or_pair(paths, name):
    """Shards of artifact ``name`` grouped as visualize_dataset reads them: by source class (masks) or
    by "<src>_to_<dst>" (generated images, IG tables)."""
    grouped = defaultdict(list)
    for path in paths:
        wildcards = wildcards_of(name, path)
        key = f"{wildcards['src']}_to_{wildcards['dst']}" if "dst" in wildcards else wildcards["src"]
        grouped[key].append(Path(path))
    return dict(grouped)


@run_step
def main(snakemake):
    cfg, params = snakemake.params.cfg, snakemake.params
    run = RunPaths(run_folder_of("manifest", snakemake.input.manifest))
    written = visualize_dataset(
        run.root, run.path("report_dir"),
        classes=cfg["classes"], pairs=[tuple(p) for p in params.pairs], image_size=cfg["classifier"]["image_size"],
        resolution=cfg["inpainting"]["resolution"], ig_cfg=cfg["ig"], seed=params.seed,
        transform=cfg["classifier"]["transform"],
        rows_per_pair=params.rows_per_pair, gallery_per_side=params.gallery_per_side, device=device(),
        mask_tars=by_class_or_pair(snakemake.input.masks, "mask_tar"),
        generated_tars=by_class_or_pair(snakemake.input.generated, "inpaint_tar"),
        score_tables=by_class_or_pair(snakemake.input.scores, "ig_scores"))
    for kind, paths in written.items():
        print(f"{kind}: {', '.join(str(p) for p in paths)}")


main(snakemake)
