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
