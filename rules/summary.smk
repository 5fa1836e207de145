rule seed_summary:
    input:
        evals=lambda wc: [run_artifact(run, "eval_json") for run in runs_of(wc.ds)],
    output:
        json=artifact("seed_summary"),
        table=artifact("seed_summary_table"),
    wildcard_constraints:
        ds=BASE_RUN_PATTERN,
    params:
        seeds=lambda wc: [RUN_SEEDS[run] for run in runs_of(wc.ds)],
        code=code_version("seed_summary"),
    log:
        f"{LOGS}/seed_summary/{{ds}}.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/seed_summary.py"


# One table across the target datasets (ddb.paper_table): rows = datasets, ERM / DFR / DDB beside the paper's
# figures; reads only each target's eval.json or summary.json, so it runs in the Snakemake process itself.
rule paper_table:
    input:
        reports=paper_table_reports(),
    output:
        table=results_artifact("paper_table"),
        csv=results_artifact("paper_table_csv"),
    params:
        datasets=list(config["targets"]),
        formats=[DATASETS[ds]["format"] for ds in config["targets"]],
        seed=config["seed"],
        code=code_version("paper_table"),
    log:
        f"{LOGS}/paper_table.log",
    localrule: True
    conda:
        CONDA_ENV
    script:
        "../scripts/paper_table.py"
