from ddb.models.loading import random_models_of


rule retrain:
    input:
        manifest=rules.prepare_dataset.output.manifest,
        model=rules.train_erm.output.model,
        prune=generated_inputs("prune"),
        generated=generated_inputs("tar"),
    output:
        model=f"{R}/{{ds}}/retrain/model.pt",
        history=f"{R}/{{ds}}/retrain/history.parquet",
    params:
        cfg=dataset_section("classes", "classifier", "retrain", "class_balance"),
        seed=config["seed"],
        code=code_version("retrain"),
    benchmark:
        f"{BENCHMARKS}/retrain/{{ds}}.tsv",
    log:
        f"{LOGS}/retrain/{{ds}}.log",
    conda:
        CONDA_ENV
    threads: rule_threads("retrain")
    resources:
        **rule_resources("retrain"),
    script:
        "../scripts/retrain.py"


rule evaluate:
    input:
        manifest=rules.prepare_dataset.output.manifest,
        erm=rules.train_erm.output.model,
        ddb=rules.retrain.output.model,
    output:
        json=report(f"{R}/{{ds}}/eval.json", caption="../report/eval_json.rst", category="1. evaluate",
                    subcategory="{ds}"),
        table=f"{R}/{{ds}}/eval.parquet",
    params:
        cfg=dataset_section("classifier", "retrain"),
        # the entry's `random:` models: eval.json marks a rehearsal (ddb.models.loading.random_models_of)
        random_models=lambda wc: random_models_of(DATASETS[wc.ds]),
        code=code_version("evaluate"),
    benchmark:
        f"{BENCHMARKS}/evaluate/{{ds}}.tsv",
    log:
        f"{LOGS}/evaluate/{{ds}}.log",
    conda:
        CONDA_ENV
    threads: rule_threads("evaluate")
    resources:
        **rule_resources("evaluate"),
    script:
        "../scripts/evaluate.py"
