# DDB: Diffusion Driven Balancing as a Snakemake workflow. This file is the table of contents:
# each phase lives in rules/*.smk, shared helpers in rules/common.smk.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"
report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/models.smk"
include: "rules/data.smk"
include: "rules/erm.smk"
include: "rules/generate.smk"
include: "rules/retrain.smk"
include: "rules/tune.smk"
include: "rules/report.smk"
include: "rules/summary.smk"

# Seconds of pandas on small tables: run them in the Snakemake process itself rather than queueing a
# SLURM job for each (localrules only matter to a cluster executor). fetch_model downloads the hub
# models, which a compute node may have no network for: it runs where Snakemake runs too.
localrules: mean_softmax, prune, seed_run_data, fetch_model


rule all:
    input:
        all_targets(),
        step_artifacts(),
    default_target: True


# A mistyped target is named with the datasets and artifacts that exist (rules/common.smk).
check_command_line_targets()


# On a SLURM cluster: stop before submitting a job that no node of its partition can hold. Then hold the
# results folder, so a second run on it (from any checkout) stops at once.
onstart:
    check_cluster_requests()
    take_results_lock()


onsuccess:
    release_results_lock()
    print_eval_summaries()


onerror:
    release_results_lock()
