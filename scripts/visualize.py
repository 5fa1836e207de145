"""Rule visualize: grids, curves and tables of what DDB did, under results/{ds}/report/."""
from ddb.paths import RunPaths, run_folder_of
from ddb.scripting import device, run_step
from ddb.visualize import INPUTS, visualize_dataset


@run_step
def main(snakemake):
    cfg, params = snakemake.params.cfg, snakemake.params
    report_dir = RunPaths(run_folder_of("report_eval_html", snakemake.output.eval_html)).path("report_dir")
    written = visualize_dataset(
        {name: snakemake.input.get(name, []) for name in INPUTS}, report_dir,
        classes=cfg["classes"], pairs=[tuple(p) for p in params.pairs], image_size=cfg["classifier"]["image_size"],
        resolution=cfg["inpainting"]["resolution"], ig_cfg=cfg["ig"], seed=params.seed,
        transform=cfg["classifier"]["transform"],
        rows_per_pair=params.rows_per_pair, gallery_per_side=params.gallery_per_side, device=device())
    for kind, paths in written.items():
        print(f"{kind}: {', '.join(str(p) for p in paths)}")


main(snakemake)
