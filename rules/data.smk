rule prepare_dataset:
    input:
        sources=dataset_sources,
    output:
        manifest=artifact("manifest"),
        groups=artifact("groups"),
    wildcard_constraints:
        ds=BASE_RUN_PATTERN,
    params:
        cfg=dataset_section("format", "root", "classes", "check_images", "minority_groups", "class_balance",
                            "synthetic", "celeba", "metashift", "imagenet", only_if_set=("table", "table_split")),
        seed=config["seed"],  # the data are the same for every seed of `seeds`
        allow_root_change=config["allow_root_change"],
        code=code_version("prepare_dataset"),
        # size and time of each source: a file put back with an *older* time (re-extracted) reruns too
        sources=dataset_source_stamps,
    benchmark:
        f"{BENCHMARKS}/prepare_dataset/{{ds}}.tsv",
    log:
        f"{LOGS}/prepare_dataset/{{ds}}.log",
    conda:
        CONDA_ENV
    threads: rule_threads("prepare_dataset")
    resources:
        **rule_resources("prepare_dataset"),
    script:
        "../scripts/prepare_dataset.py"


# Another seed of `seeds` reads the same data: its run folder gets a copy of the dataset's manifest (whose
# image paths point at the dataset's own files), not a second preparation of the same images.
rule seed_run_data:
    input:
        manifest=lambda wc: expand(rules.prepare_dataset.output.manifest, ds=RUN_DATASETS[wc.ds]),
        groups=lambda wc: expand(rules.prepare_dataset.output.groups, ds=RUN_DATASETS[wc.ds]),
    output:
        manifest=artifact("manifest"),
        groups=artifact("groups"),
    wildcard_constraints:
        ds=SEED_RUN_PATTERN,
    log:
        f"{LOGS}/seed_run_data/{{ds}}.log",
    conda:
        CONDA_ENV
    shell:
        "cp {input.manifest} {output.manifest} && cp {input.groups} {output.groups} 2> {log}"
