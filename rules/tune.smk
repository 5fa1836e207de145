# ---- Tuning P and γ on validation: a dataset entry's `tune` section lists candidate thresholds P and weights
# γ (ddb.tuning). Generation runs once; prune and retrain run once per candidate ({cand}: a name made of its
# values, P0.2_0.2-g1_1, so an added candidate reruns only itself), each under results/{ds}/tune/{cand}/;
# tune_select picks the best validation WGA (ties: fewer kept generated images, then the order given) and
# evaluate reads that candidate's model only. Without a `tune` section no rule here runs.


wildcard_constraints:
    cand=tune_name_pattern(),


localrules: tune_prune, tune_select, visualize_tune


# prune with the candidate's thresholds P (inputs, script, code version: rule prune's)
use rule prune as tune_prune with:
    output:
        artifact("tune_prune"),
    params:
        cfg=tune_section("prune"),
    benchmark:
        f"{BENCHMARKS}/tune_prune/{{ds}}/{{cand}}/{{src}}_to_{{dst}}.tsv",
    log:
        f"{LOGS}/tune_prune/{{ds}}/{{cand}}/{{src}}_to_{{dst}}.log",


# retrain on the candidate's prune tables with its γ (script, seed, resources, code version: rule retrain's)
use rule retrain as tune_retrain with:
    input:
        manifest=rules.prepare_dataset.output.manifest,
        model=rules.train_erm.output.model,
        prune=tune_prune_tables,
        generated=generated_inputs("tar"),
    output:
        model=artifact("tune_model"),
        history=artifact("tune_history"),
    params:
        cfg=tune_section("classes", "classifier", "retrain", "class_balance"),
    benchmark:
        f"{BENCHMARKS}/tune_retrain/{{ds}}/{{cand}}.tsv",
    log:
        f"{LOGS}/tune_retrain/{{ds}}/{{cand}}.log",


# validation figures only (each candidate's selected epoch) and kept counts: the test split is not read
rule tune_select:
    input:
        histories=tune_outputs("history"),
        prune=tune_outputs("prune"),
    output:
        table=artifact("tune_candidates"),
        selected=artifact("tune_selected"),
    params:
        candidates=lambda wc: tune_candidate_values(wc.ds),
        classes=lambda wc: classes_of(wc.ds),
        code=code_version("tune_select"),
    benchmark:
        f"{BENCHMARKS}/tune_select/{{ds}}.tsv",
    log:
        f"{LOGS}/tune_select/{{ds}}.log",
    conda:
        CONDA_ENV
    threads: 1
    script:
        "../scripts/tune_select.py"


# every candidate side by side for the report (part of visualize_all for a tuned dataset)
rule visualize_tune:
    input:
        table=rules.tune_select.output.table,
        selected=rules.tune_select.output.selected,
    output:
        html=report(artifact("report_tune_html"), caption="../report/tune.rst", category="2. retrain",
                    subcategory="{ds}"),
        csv=artifact("report_tune_csv"),
    params:
        code=code_version("visualize_tune"),
    benchmark:
        f"{BENCHMARKS}/visualize_tune/{{ds}}.tsv",
    log:
        f"{LOGS}/visualize_tune/{{ds}}.log",
    conda:
        CONDA_ENV
    threads: 1
    script:
        "../scripts/visualize_tune.py"
