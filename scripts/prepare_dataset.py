"""Rule prepare_dataset: the manifest (one row per image) and its group x split table."""
import logging
from pathlib import Path

from ddb.datasets import build_manifest, format_group_table, small_class_warnings
from ddb.datasets.manifest import group_split_table
from ddb.storage.atomic import write_parquet, write_text
from ddb.scripting import run_step
from ddb.selection_checks import check_validation_size, format_warnings


@run_step
def main(job):
    name = job.wildcards.ds
    manifest = build_manifest(name, job.params.cfg, seed=job.params.seed)
    minority = job.params.cfg["minority_groups"]
    print(f"{name}: {len(manifest)} images\n{format_group_table(manifest, minority)}", flush=True)
    # K is read from the config, not a param of this rule: editing low_loss.k must not rebuild the data
    for line in small_class_warnings(name, manifest, job.params.cfg["classes"],
                                     job.config["datasets"][name]["low_loss"]["k"]):
        logging.getLogger("ddb.prepare_dataset").warning(line)
    # The earliest step that sees the validation split checks its group sizes, so `too_small: stop` ends the run
    # before any training; read from the config like K, so editing the setting never rebuilds the data (evaluate
    # checks again with the setting as its param, and writes the warning into eval.json).
    for line in format_warnings(check_validation_size(manifest, name, job.config["datasets"][name]["validation"])):
        logging.getLogger("ddb.prepare_dataset").warning(line)
    if job.params.cfg["class_balance"] == "subsample":
        print(f"class_balance: subsample: {int((manifest['split'] == 'excluded').sum())} training images left out "
              "(split 'excluded'), every class now has "
              f"{int((manifest['split'] == 'train').sum()) // len(job.params.cfg['classes'])} training images")
    write_parquet(group_split_table(manifest, minority).reset_index(names="group"), job.output.groups)
    write_parquet(manifest, job.output.manifest)
    write_text(job.params.cfg["root"] + "\n", Path(job.output.manifest).with_name("root.txt"))


main(snakemake)
