"""Rule train_erm: the ERM classifier f (trained, or imported from erm.checkpoint)."""
from ddb.erm import train_erm
from ddb.io import read_parquet, write_parquet
from ddb.models.classifier import save_classifier
from ddb.scripting import device, run_step


@run_step
def main(snakemake):
    cfg = snakemake.params.cfg
    manifest = read_parquet(snakemake.input.manifest)
    model, history = train_erm(manifest, cfg, seed=snakemake.params.seed, device=device(),
                               name=snakemake.wildcards.ds)
    write_parquet(history, snakemake.output.history)
    save_classifier(model, snakemake.output.model, arch=cfg["classifier"]["arch"], classes=cfg["classes"],
                    image_size=cfg["classifier"]["image_size"], transform=cfg["classifier"]["transform"])


main(snakemake)
