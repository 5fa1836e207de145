# ---- See what DDB did: grids, curves and small tables under results/{ds}/report/, marked for the
# Snakemake report. Build them and the report with
#     snakemake --cores 2 visualize_all
#     snakemake --report results/report.html visualize_all
# (or one dataset: target results/<ds>/report/eval.html). `rule all` does not need them.

# How much each grid shows (a seeded draw, so a rerun shows the same samples).
VISUALIZE = {"rows_per_pair": 8, "gallery_per_side": 8}


rule visualize:
    input:
        manifest=rules.prepare_dataset.output.manifest,
        erm=rules.train_erm.output.model,
        erm_history=rules.train_erm.output.history,
        ti_loss=visualize_ti_losses,
        psi=rules.mean_softmax.output[0],
        masks=visualize_masks,
        generated=generated_inputs("tar"),
        generated_index=generated_inputs("index"),
        scores=visualize_scores,
        # DDB's prune tables and history: with a `tune` section every candidate's (the grids show the selected one)
        prune=ddb_prune_tables,
        retrain_history=ddb_retrain_histories,
        eval_json=artifact("eval_json"),
        eval_table=rules.evaluate.output.table,
    output:
        eval_html=report(f"{REPORT_DIR}/eval.html", caption="../report/eval.rst",
                         category="1. evaluate", subcategory="{ds}"),
        eval_csv=f"{REPORT_DIR}/eval.csv",
        retrain_curves=report(f"{REPORT_DIR}/retrain_curves.png", caption="../report/retrain_curves.rst",
                              category="2. retrain", subcategory="{ds}"),
        prune_html=report(f"{REPORT_DIR}/prune.html", caption="../report/prune.rst",
                          category="3. prune", subcategory="{ds}",
                          labels={"pair": "all pairs", "figure": "counts per pair and reason"}),
        prune_csv=f"{REPORT_DIR}/prune_counts.csv",
        kept_vs_pruned=report(directory(f"{REPORT_DIR}/kept_vs_pruned"), patterns=["{pair}.png"],
                              caption="../report/kept_vs_pruned.rst", category="3. prune", subcategory="{ds}",
                              labels={"pair": "{pair}", "figure": "kept vs pruned sample"}),
        pairs=report(directory(f"{REPORT_DIR}/pairs"), patterns=["{pair}.png"], caption="../report/pairs.rst",
                     category="4. mask, inpaint, ig_score", subcategory="{ds}",
                     labels={"pair": "{pair}", "figure": "source | mask | generated | IG"}),
        psi_html=report(f"{REPORT_DIR}/psi.html", caption="../report/psi.rst",
                        category="5. select_low_loss, mean_softmax", subcategory="{ds}"),
        psi_csv=f"{REPORT_DIR}/psi.csv",
        ti_curve=report(f"{REPORT_DIR}/textual_inversion_loss.png", caption="../report/textual_inversion.rst",
                        category="6. textual_inversion", subcategory="{ds}"),
        grid_samples=f"{REPORT_DIR}/grid_samples.csv",
    params:
        cfg=dataset_section("classes", "classifier", "inpainting", "ig"),
        pairs=lambda wc: [list(pair) for pair in pairs_of(wc.ds)],
        seed=run_seed,
        rows_per_pair=VISUALIZE["rows_per_pair"],
        gallery_per_side=VISUALIZE["gallery_per_side"],
        code=code_version("visualize"),
    benchmark:
        f"{BENCHMARKS}/visualize/{{ds}}.tsv",
    log:
        f"{LOGS}/visualize/{{ds}}.log",
    conda:
        CONDA_ENV
    threads: rule_threads("visualize")
    resources:
        **rule_resources("visualize"),
    script:
        "../scripts/visualize.py"


rule visualize_all:
    input:
        [f"{run_artifact(ds, 'report_dir')}/eval.html" for ds in config["targets"]],
        tune_reports(),  # report/tune.html of each tuned dataset (rules/tune.smk)
    default_target: False
