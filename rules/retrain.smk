from ddb.models.loading import random_models_of


rule retrain:
    input:
        manifest=rules.prepare_dataset.output.manifest,
        model=rules.train_erm.output.model,
        prune=generated_inputs("prune"),
        generated=generated_inputs("tar"),
    output:
        model=artifact("retrain_model"),
        history=artifact("retrain_history"),
    params:
        cfg=dataset_section("classes", "classifier", "retrain", "class_balance"),
        seed=run_seed,
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
    retries: training_retries("retrain")
    script:
        "../scripts/retrain.py"


# DFR (Deep Feature Reweighting), the baseline beside DDB: ERM's last layer refit on group-balanced
# validation data (ddb.dfr). It needs the ERM model only, so it runs while generation does.
rule dfr:
    input:
        manifest=rules.prepare_dataset.output.manifest,
        model=rules.train_erm.output.model,
    output:
        model=artifact("dfr_model"),
        selection=artifact("dfr_selection"),
        halves=artifact("dfr_halves"),
        coefficients=artifact("dfr_coefficients"),
        features=artifact("dfr_features"),
    params:
        cfg=dataset_section("classifier", "dfr"),
        seed=run_seed,
        code=code_version("dfr"),
    benchmark:
        f"{BENCHMARKS}/dfr/{{ds}}.tsv",
    log:
        f"{LOGS}/dfr/{{ds}}.log",
    conda:
        CONDA_ENV
    threads: rule_threads("dfr")
    resources:
        **rule_resources("dfr"),
    script:
        "../scripts/dfr.py"


rule evaluate:
    input:
        manifest=rules.prepare_dataset.output.manifest,
        erm=rules.train_erm.output.model,
        # DDB's model: retrain's; with a `tune` section every candidate's, and the selection that names the
        # one evaluate reads (rules/tune.smk): test data never chooses a candidate
        ddb=ddb_models,
        tune=tune_selection,
        # DFR's model where the dataset's `dfr` section is enabled (eval.json then has a `dfr` entry)
        dfr=dfr_output("model"),
        # what the choices on validation were made from, for the warnings of ties (ddb.selection_checks)
        erm_history=rules.train_erm.output.history,
        ddb_history=ddb_retrain_histories,
        tune_candidates=tune_candidates_table,
        dfr_selection=dfr_output("selection"),
    output:
        json=report(artifact("eval_json"), caption="../report/eval_json.rst", category="1. evaluate",
                    subcategory="{ds}"),
        table=artifact("eval_table"),
    params:
        cfg=dataset_section("classifier", "retrain"),
        # the entry's `random:` models: eval.json marks a rehearsal (ddb.models.loading.random_models_of)
        random_models=lambda wc: random_models_of(DATASETS[wc.ds]),
        validation=lambda wc: DATASETS[wc.ds]["validation"],
        erm_select_epoch=lambda wc: DATASETS[wc.ds]["erm"]["select_epoch"],
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
