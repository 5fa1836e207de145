"""Rule prepare_dataset: the manifest (one row per image) and its group x split table."""
from pathlib import Path

from ddb.datasets import build_manifest, format_group_table
from ddb.datasets.manifest import group_split_table
from ddb.io import write_parquet
from ddb.scripting import run_step


@run_step
def main(snakemake):
    name = snakemake.wildcards.ds
    manifest = build_manifest(name, snakemake.params.cfg, seed=snakemake.params.seed)
    minority = snakemake.params.cfg["minority_groups"]
    print(f"{name}: {len(manifest)} images\n{format_group_table(manifest, minority)}", flush=True)
    if snakemake.params.cfg["class_balance"] == "subsample":
        print(f"class_balance: subsample: {int((manifest['split'] == 'excluded').sum())} training images left out "
              "(split 'excluded'), every class now has "
              f"{int((manifest['split'] == 'train').sum()) // len(snakemake.params.cfg['classes'])} training images")
    write_parquet(group_split_table(manifest, minority).reset_index(names="group"), snakemake.output.groups)
    write_parquet(manifest, snakemake.output.manifest)
    Path(snakemake.output.manifest).with_name("root.txt").write_text(snakemake.params.cfg["root"] + "\n")


main(snakemake)
