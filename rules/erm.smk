rule train_erm:
    input:
        manifest=rules.prepare_dataset.output.manifest,
        imported=imported_erm,
        models=model_records("train_erm"),
    output:
        model=artifact("erm_model"),
        history=artifact("erm_history"),
    params:
        cfg=dataset_section("classes", "classifier", "erm", "class_balance"),
        seed=run_seed,
        code=code_version("train_erm"),
    benchmark:
        f"{BENCHMARKS}/train_erm/{{ds}}.tsv",
    log:
        f"{LOGS}/train_erm/{{ds}}.log",
    conda:
        CONDA_ENV
    threads: rule_threads("train_erm")
    resources:
        **rule_resources("train_erm"),
    retries: training_retries("train_erm")
    script:
        "../scripts/train_erm.py"


rule select_low_loss:
    input:
        manifest=rules.prepare_dataset.output.manifest,
        model=rules.train_erm.output.model,
    output:
        artifact("low_loss"),
    params:
        cfg=dataset_section("classes", "classifier", "low_loss"),
        code=code_version("select_low_loss"),
    benchmark:
        f"{BENCHMARKS}/select_low_loss/{{ds}}/{{cls}}.tsv",
    log:
        f"{LOGS}/select_low_loss/{{ds}}/{{cls}}.log",
    conda:
        CONDA_ENV
    threads: rule_threads("select_low_loss")
    resources:
        **rule_resources("select_low_loss"),
    script:
        "../scripts/select_low_loss.py"


rule mean_softmax:
    input:
        lambda wc: expand(rules.select_low_loss.output[0], ds=wc.ds, cls=classes_of(wc.ds)),
    output:
        artifact("psi"),
    params:
        cfg=dataset_section("classes"),
        code=code_version("mean_softmax"),
    benchmark:
        f"{BENCHMARKS}/mean_softmax/{{ds}}.tsv",
    log:
        f"{LOGS}/mean_softmax/{{ds}}.log",
    conda:
        CONDA_ENV
    threads: 1
    script:
        "../scripts/mean_softmax.py"
