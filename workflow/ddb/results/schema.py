"""The names a step writes and a reader reads, defined once: the writers (``ddb.evaluate``,
``ddb.inpainting``, ``ddb.pruning``) import them from here, and so do ``ddb inspect`` and the report.

Plain Python only: importing this module costs nothing and never brings in torch.
"""

from __future__ import annotations

import re

# The models eval.json may hold, in the order every table shows them (DFR only where its rule ran).
MODELS = ("erm", "dfr", "ddb")

# A generated image's id: its source's id and the class it was redrawn as, and the draw where each source is
# drawn several times (generation.per_source > 1).
GENERATED_ID = "{source}_to_{target}"
GENERATED_DRAW = "{base}_{draw}"

# The index beside an inpainting shard (inpaint/{src}_to_{dst}/shard-{n}.parquet).
INPAINT_INDEX_COLUMNS = ["sample_id", "source_id", "source_y", "y", "draw", "has_image", "seed", "prompt"]

# Why a generated image was kept or dropped (prune/{src}_to_{dst}.parquet, column ``reason``); the first is
# the verdict of a kept one, the others each a reason to drop one.
REASONS = ("kept", "still_source", "low_ig", "no_mask", "non_finite")

# The columns of a prune table, in the order it is written.
PRUNE_COLUMNS = ["sample_id", "source_id", "y", "source_y", "keep", "reason", "rho", "threshold", "p_source",
                 "psi_source", "still_source", "low_ig"]

# The figures of each model in eval.json (ddb.metrics computes them), in the order the tables show them.
ACCURACIES = ("worst_group_accuracy", "mean_accuracy", "weighted_mean_accuracy")


def generated_id(source_id: str, target_class: str, draw: int = 0, per_source: int = 1) -> str:
    """``{source}_to_{target}``, and ``_{draw}`` after it when each source is drawn several times."""
    base = GENERATED_ID.format(source=source_id, target=target_class)
    return base if per_source == 1 else GENERATED_DRAW.format(base=base, draw=draw)


def generated_id_pattern(target_class: str) -> re.Pattern:
    """A regex matching the ids generated as ``target_class``; group 1 is the source's id."""
    base = re.escape(GENERATED_ID.format(source="\0", target=target_class)).replace(re.escape("\0"), "(.+)")
    return re.compile(base + "(_\\d+)?")
