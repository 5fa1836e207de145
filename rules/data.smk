rule prepare_dataset:
    output:
        manifest=f"{R}/{{ds}}/data/manifest.parquet",
        groups=f"{R}/{{ds}}/data/groups.parquet",
    params:
        cfg=dataset_section("format", "root", "classes", "check_images", "minority_groups", "class_balance",
                            "synthetic", "celeba", "metashift", "imagenet"),
        seed=config["seed"],
        allow_root_change=config["allow_root_change"],
        code=code_version("prepare_dataset"),
    log:
        "logs/prepare_dataset/{ds}.log",
    threads: rule_threads("prepare_dataset")
    resources:
        **rule_resources("prepare_dataset"),
    script:
        "../scripts/prepare_dataset.py"
