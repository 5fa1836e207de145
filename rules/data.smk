rule prepare_dataset:
    input:
        sources=dataset_sources,
    output:
        manifest=f"{R}/{{ds}}/data/manifest.parquet",
        groups=f"{R}/{{ds}}/data/groups.parquet",
    params:
        cfg=dataset_section("format", "root", "classes", "check_images", "minority_groups", "class_balance",
                            "synthetic", "celeba", "metashift", "imagenet"),
        seed=config["seed"],
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
