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
        # DDB's prune tables and history: with a `tune` section every candidate's, and tune/selected.json, which
        # names the one the grids show
        prune=ddb_prune_tables,
        retrain_history=ddb_retrain_histories,
        tune_selection=tune_selection,
        eval_json=artifact("eval_json"),
        eval_table=rules.evaluate.output.table,
    output:
        eval_html=report(artifact("report_eval_html"), caption="../report/eval.rst",
                         category="1. evaluate", subcategory="{ds}"),
        eval_csv=artifact("report_eval_csv"),
        retrain_curves=report(artifact("report_retrain_curves"), caption="../report/retrain_curves.rst",
                              category="2. retrain", subcategory="{ds}"),
        prune_html=report(artifact("report_prune_html"), caption="../report/prune.rst",
                          category="3. prune", subcategory="{ds}",
                          labels={"pair": "all pairs", "figure": "counts per pair and reason"}),
        prune_csv=artifact("report_prune_csv"),
        kept_vs_pruned=report(directory(artifact_folder("report_kept_vs_pruned")),
                              patterns=[Path(ARTIFACTS["report_kept_vs_pruned"]).name],
                              caption="../report/kept_vs_pruned.rst", category="3. prune", subcategory="{ds}",
                              labels={"pair": "{pair}", "figure": "kept vs pruned sample"}),
        pairs=report(directory(artifact_folder("report_pairs")), patterns=[Path(ARTIFACTS["report_pairs"]).name],
                     caption="../report/pairs.rst",
                     category="4. mask, inpaint, ig_score", subcategory="{ds}",
                     labels={"pair": "{pair}", "figure": "source | mask | generated | IG"}),
        psi_html=report(artifact("report_psi_html"), caption="../report/psi.rst",
                        category="5. select_low_loss, mean_softmax", subcategory="{ds}"),
        psi_csv=artifact("report_psi_csv"),
        ti_curve=report(artifact("report_ti_curve"), caption="../report/textual_inversion.rst",
                        category="6. textual_inversion", subcategory="{ds}"),
        grid_samples=artifact("report_grid_samples"),
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
        [run_artifact(ds, "report_eval_html") for ds in config["targets"]],
        tune_reports(),  # report/tune.html of each tuned dataset (rules/tune.smk)
    default_target: False
