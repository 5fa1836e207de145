"""The table across datasets (ddb.paper_table): exact text from hand-made eval.json and summary.json objects."""


from ddb.paper_table import build_rows, format_csv, format_markdown
from ddb.paths import RESULTS_ARTIFACTS, results_artifact_path


def summary_json(name, seeds, figures, rehearsal=False):
    methods = {method: {metric: {"mean": mean, "std": std, "per_seed": {}} for metric, (mean, std) in metrics.items()}
               for method, metrics in figures.items()}
    summary = {"dataset": name, "seeds": seeds, "methods": methods}
    if rehearsal:
        summary["rehearsal"] = True
    return summary


DEMO = {"dataset": "demo",
        "erm": {"worst_group_accuracy": 0.0, "mean_accuracy": 0.547, "weighted_mean_accuracy": 0.944,
                "group_accuracy": {"a": 0.0, "b": 1.0}, "group_size": {"a": 1, "b": 1}},
        "ddb": {"worst_group_accuracy": 0.41, "mean_accuracy": 0.693, "weighted_mean_accuracy": 0.904,
                "group_accuracy": {"a": 0.41, "b": 0.9}, "group_size": {"a": 1, "b": 1}}}
WATERBIRDS = summary_json("waterbirds", [0, 1, 2], {
    method: {"worst_group_accuracy": (wga, 0.021), "mean_accuracy": (0.9, 0.005), "weighted_mean_accuracy": (0.95, 0.0)}
    for method, wga in (("erm", 0.7), ("dfr", 0.91), ("ddb", 0.925))})


def rows():
    return build_rows([{"name": "demo", "format": "synthetic", "report": DEMO, "seeds": [0]},
                       {"name": "waterbirds", "format": "waterbirds", "report": WATERBIRDS}])


def test_markdown_table_has_one_row_per_dataset_and_the_papers_figures_beside():
    assert format_markdown(rows()).splitlines()[2:] == [
        "| dataset    | seeds   |    ERM WGA |   ERM mean |    DFR WGA |   DFR mean |    DDB WGA |   DDB mean "
        "| paper ERM WGA | paper DFR WGA | paper DDB WGA |",
        "|------------|---------|-----------:|-----------:|-----------:|-----------:|-----------:|-----------:"
        "|--------------:|--------------:|--------------:|",
        "| demo       | 0       |        0.0 |       54.7 |          — |          — |       41.0 |       69.3 "
        "|             — |             — |             — |",
        "| waterbirds | 0, 1, 2 | 70.0 ± 2.1 | 90.0 ± 0.5 | 91.0 ± 2.1 | 90.0 ± 0.5 | 92.5 ± 2.1 | 90.0 ± 0.5 "
        "|          74.6 |          92.9 |          93.0 |",
    ]
    assert "arXiv 2503.17226" in format_markdown(rows()).splitlines()[0]


def test_csv_holds_percentages_and_leaves_missing_figures_empty():
    lines = format_csv(rows()).splitlines()
    header = lines[0].split(",")
    demo = dict(zip(header, lines[1].split(",")))
    waterbirds = dict(zip(header, lines[2].split(",")))
    assert demo["seeds"] == "0" and demo["erm_wga_pct"] == "0.0" and demo["ddb_mean_pct"] == "69.3"
    assert demo["ddb_wga_std_pct"] == "" and demo["dfr_wga_pct"] == "" and demo["paper_ddb_wga_pct"] == ""
    assert waterbirds["seeds"] == "0 1 2" and waterbirds["ddb_wga_pct"] == "92.5"
    assert waterbirds["ddb_wga_std_pct"] == "2.1" and waterbirds["ddb_weighted_mean_std_pct"] == "0.0"
    assert (waterbirds["paper_erm_wga_pct"], waterbirds["paper_dfr_wga_pct"], waterbirds["paper_ddb_wga_pct"]) == (
        "74.6", "92.9", "93.0")


def test_a_single_seed_summary_shows_no_std_and_a_rehearsal_is_marked():
    single = summary_json("celeba", [3], {"ddb": {"worst_group_accuracy": (0.5, 0.0), "mean_accuracy": (0.6, 0.0),
                                                  "weighted_mean_accuracy": (0.7, 0.0)}}, rehearsal=True)
    table = format_markdown(build_rows([{"name": "celeba", "format": "celeba", "report": single}]))
    row = table.splitlines()[4]
    assert [cell.strip() for cell in row.strip("|").split("|")] == [
        "celeba (rehearsal)", "3", "—", "—", "—", "—", "50.0", "60.0", "42.2", "88.3", "85.8"]
    assert table.splitlines()[-1].startswith("(rehearsal): a run with `random:` models")


def test_the_tables_lie_in_the_results_folder_itself(tmp_path):
    assert results_artifact_path(tmp_path, "paper_table") == tmp_path / "paper_table.md"
    assert results_artifact_path(tmp_path, "paper_table_csv") == tmp_path / "paper_table.csv"
    assert set(RESULTS_ARTIFACTS) == {"paper_table", "paper_table_csv"}
