"""Rule visualize: grids, curves and tables of what DDB did, under results/{ds}/report/."""
from ddb.paths import RunPaths, run_folder_of
from ddb.scripting import device, run_step
from ddb.settings import dataset_settings
from ddb.visualize import INPUTS, visualize_dataset


@run_step
def main(job):
    params = job.params
    settings = dataset_settings(params.cfg, job.wildcards.ds)
    report_dir = RunPaths(run_folder_of("report_eval_html", job.output.eval_html)).path("report_dir")
    written = visualize_dataset(
        {name: job.input.get(name, []) for name in INPUTS}, report_dir,
        classes=settings.classes, pairs=[tuple(p) for p in params.pairs],
        image_size=settings.classifier.image_size, resolution=settings.inpainting.resolution, ig=settings.ig,
        seed=params.seed, transform=settings.classifier.transform,
        rows_per_pair=params.rows_per_pair, gallery_per_side=params.gallery_per_side, device=device())
    for kind, paths in written.items():
        print(f"{kind}: {', '.join(str(p) for p in paths)}")


main(snakemake)
