rule textual_inversion:
    input:
        manifest=rules.prepare_dataset.output.manifest,
        models=model_records("textual_inversion"),
    output:
        embeds=artifact("ti_embeds"),
        samples=artifact("ti_samples"),
        loss=artifact("ti_loss"),
    params:
        cfg=dataset_section("classes", "minority_groups", "textual_inversion"),
        seed=run_seed,
        code=code_version("textual_inversion"),
    benchmark:
        f"{BENCHMARKS}/textual_inversion/{{ds}}/{{cls}}.tsv",
    log:
        f"{LOGS}/textual_inversion/{{ds}}/{{cls}}.log",
    conda:
        CONDA_ENV
    threads: rule_threads("textual_inversion")
    resources:
        **rule_resources("textual_inversion"),
    retries: training_retries("textual_inversion")
    script:
        "../scripts/textual_inversion.py"


rule mask:
    input:
        manifest=rules.prepare_dataset.output.manifest,
        low_loss=generation_low_loss,
        mask_dir=mask_folder,
        models=model_records("mask"),
    output:
        tar=artifact("mask_tar"),
        index=artifact("mask_index"),
    params:
        cfg=dataset_section("classes", "minority_groups", "masking", "generation"),
        shards=lambda wc: len(shards_of(wc.ds, wc.src)),
        seed=run_seed,
        code=code_version("mask"),
    benchmark:
        f"{BENCHMARKS}/mask/{{ds}}/{{src}}/shard-{{n}}.tsv",
    log:
        f"{LOGS}/mask/{{ds}}/{{src}}/shard-{{n}}.log",
    conda:
        CONDA_ENV
    threads: rule_threads("mask")
    resources:
        **rule_resources("mask"),
    group:
        GENERATION_GROUP
    script:
        "../scripts/mask.py"


rule inpaint:
    input:
        manifest=rules.prepare_dataset.output.manifest,
        masks=rules.mask.output.tar,
        mask_index=rules.mask.output.index,
        low_loss=generation_low_loss,
        token=learned_token,
        models=model_records("inpaint"),
    output:
        tar=artifact("inpaint_tar"),
        index=artifact("inpaint_index"),
    params:
        cfg=dataset_section("classes", "minority_groups", "inpainting", "generation"),
        shards=lambda wc: len(shards_of(wc.ds, wc.src)),
        textual_inversion=lambda wc: ti_enabled(wc.ds),
        seed=run_seed,
        code=code_version("inpaint"),
    benchmark:
        f"{BENCHMARKS}/inpaint/{{ds}}/{{src}}_to_{{dst}}/shard-{{n}}.tsv",
    log:
        f"{LOGS}/inpaint/{{ds}}/{{src}}_to_{{dst}}/shard-{{n}}.log",
    conda:
        CONDA_ENV
    threads: rule_threads("inpaint")
    resources:
        **rule_resources("inpaint"),
    group:
        GENERATION_GROUP
    script:
        "../scripts/inpaint.py"


rule ig_score:
    input:
        manifest=rules.prepare_dataset.output.manifest,
        model=rules.train_erm.output.model,
        generated=rules.inpaint.output.tar,
        index=rules.inpaint.output.index,
        masks=rules.mask.output.tar,
    output:
        artifact("ig_scores"),
    params:
        cfg=dataset_section("classifier", "ig"),
        code=code_version("ig_score"),
    benchmark:
        f"{BENCHMARKS}/ig_score/{{ds}}/{{src}}_to_{{dst}}/shard-{{n}}.tsv",
    log:
        f"{LOGS}/ig_score/{{ds}}/{{src}}_to_{{dst}}/shard-{{n}}.log",
    conda:
        CONDA_ENV
    threads: rule_threads("ig_score")
    resources:
        **rule_resources("ig_score"),
    group:
        GENERATION_GROUP
    script:
        "../scripts/ig_score.py"


rule prune:
    input:
        scores=lambda wc: expand(rules.ig_score.output[0], ds=wc.ds, src=wc.src, dst=wc.dst, n=shards_of(wc.ds, wc.src)),
        psi=rules.mean_softmax.output[0],
    output:
        artifact("prune"),
    params:
        cfg=dataset_section("prune"),
        code=code_version("prune"),
    benchmark:
        f"{BENCHMARKS}/prune/{{ds}}/{{src}}_to_{{dst}}.tsv",
    log:
        f"{LOGS}/prune/{{ds}}/{{src}}_to_{{dst}}.log",
    conda:
        CONDA_ENV
    threads: 1
    script:
        "../scripts/prune.py"
