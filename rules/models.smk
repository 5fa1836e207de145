# The hub models the runs load, brought into the cache before any job loads them (ddb.models.fetching): one
# job per model, run where Snakemake runs (localrules in the Snakefile: the login node of a cluster, which
# has network; its compute-node jobs run offline), recording the commit it resolved to.


rule fetch_model:
    output:
        f"{R}/{MODEL_RECORD}",
    params:
        spec=lambda wc: MODELS_TO_FETCH[wc.model],
        code=code_version("fetch_model"),
    log:
        f"{LOGS}/fetch_model/{{model}}.log",
    wildcard_constraints:
        model=fetch_name_pattern(),
    conda:
        CONDA_ENV
    threads: 1
    script:
        "../scripts/fetch_model.py"
