"""The steps ``ddb inspect`` knows, with the aliases a user may type: read by :mod:`ddb.inspect` and by the
CLI's help (:mod:`ddb.cli`), which must stay quick to import (no pandas)."""

# (rule name, aliases a user may type for it)
STEPS = [
    ("prepare_dataset", ("data", "manifest", "dataset")),
    ("train_erm", ("erm",)),
    ("textual_inversion", ("ti", "token", "tokens")),
    ("select_low_loss", ("low_loss", "lowloss")),
    ("mean_softmax", ("psi",)),
    ("mask", ("masks", "masking")),
    ("inpaint", ("inpainting", "generate", "generated")),
    ("ig_score", ("ig", "scores")),
    ("prune", ("pruning",)),
    ("retrain", ("ddb",)),
    ("tune", ("tuning", "tune_select", "candidates")),
    ("dfr", ("baseline", "deep_feature_reweighting")),
    ("evaluate", ("eval",)),
    ("visualize", ("report", "grids")),
]
STEP_NAMES = [name for name, _ in STEPS]


def step_help() -> str:
    """The ``--step`` help: every step, then the first alias of each."""
    aliases = [names[0] for _, names in STEPS if names]
    return f"one step's table: {', '.join(STEP_NAMES)} (aliases: {', '.join(aliases)})"
