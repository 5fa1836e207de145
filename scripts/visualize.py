"""Rule visualize: grids, curves and tables of what DDB did, under results/{ds}/report/."""
from collections import defaultdict
from pathlib import Path

from ddb.scripting import device, run_step
from ddb.visualize import visualize_dataset


def by_folder(paths):
    """{folder name: [paths]}: masks/{src}/shard-n.tar -> src, inpaint/{src}_to_{dst}/... -> pair."""
    grouped = defaultdict(list)
    for path in map(Path, paths):
        grouped[path.parent.name].append(path)
    return dict(grouped)


@run_step
def main(snakemake):
    cfg, params = snakemake.params.cfg, snakemake.params
    written = visualize_dataset(
        Path(snakemake.input.manifest).parents[1], Path(snakemake.output.eval_html).parent,
        classes=cfg["classes"], pairs=[tuple(p) for p in params.pairs], image_size=cfg["classifier"]["image_size"],
        resolution=cfg["inpainting"]["resolution"], ig_cfg=cfg["ig"], seed=params.seed,
        transform=cfg["classifier"]["transform"],
        rows_per_pair=params.rows_per_pair, gallery_per_side=params.gallery_per_side, device=device(),
        mask_tars=by_folder(snakemake.input.masks), generated_tars=by_folder(snakemake.input.generated),
        score_tables=by_folder(snakemake.input.scores))
    for kind, paths in written.items():
        print(f"{kind}: {', '.join(str(p) for p in paths)}")


main(snakemake)
