"""ddb.summary: run names per seed, and the mean and sample std over seeds."""

from __future__ import annotations

import math
import re

import pytest

from ddb.paths import run_name, split_run
from ddb.summary import format_summary, summarize


def report(wga: float, mean: float, weighted: float, methods=("erm", "dfr", "ddb")) -> dict:
    return {"dataset": "demo", **{m: {"worst_group_accuracy": wga + i / 10, "mean_accuracy": mean + i / 10,
                                      "weighted_mean_accuracy": weighted + i / 10,
                                      "group_accuracy": {"landbird_on_land": wga + i / 10}}
                                  for i, m in enumerate(methods)}}


def test_run_names():
    assert run_name("demo", 0, 0) == "demo" and run_name("demo", 2, 0) == "demo/seed-2"
    assert split_run("demo/seed-2") == ("demo", 2) and split_run("demo") == ("demo", None)


def test_summary_is_the_mean_and_sample_std_over_seeds():
    summary, table = summarize("demo", {0: report(0.1, 0.5, 0.9), 1: report(0.3, 0.6, 0.8),
                                        2: report(0.5, 0.7, 0.7, methods=("erm", "ddb"))})
    assert summary["seeds"] == [0, 1, 2]
    assert list(summary["methods"]) == ["erm", "ddb"]  # dfr is missing in seed 2: left out, not averaged over two
    ddb = summary["methods"]["ddb"]["worst_group_accuracy"]
    # ddb is the 3rd method of the first two seeds (+0.2) and the 2nd of the last (+0.1)
    values = [0.3, 0.5, 0.6]
    assert ddb["per_seed"] == pytest.approx({"0": 0.3, "1": 0.5, "2": 0.6})
    assert ddb["mean"] == pytest.approx(sum(values) / 3)
    assert ddb["std"] == pytest.approx(math.sqrt(sum((v - sum(values) / 3) ** 2 for v in values) / 2))
    assert len(table) == 3 * 2 * 3 and set(table["method"]) == {"erm", "ddb"}
    text = format_summary(summary)
    assert "over 3 seed(s) [0, 1, 2]" in text
    assert re.search(r"worst-group acc\.\s+0\.300 ± 0\.200\s+0\.467 ± 0\.153", text), text


def test_one_seed_has_no_spread():
    summary, _ = summarize("demo", {0: report(0.2, 0.5, 0.9)})
    assert summary["methods"]["erm"]["mean_accuracy"] == {"mean": 0.5, "std": 0.0, "per_seed": {"0": 0.5}}
