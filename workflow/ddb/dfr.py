"""Step ``dfr``: Deep Feature Reweighting (Kirichenko, Izmailov and Wilson, ICLR 2023), the baseline
beside DDB in eval.json: the ERM model's last layer refit on group-balanced validation data.

DFR^Tr_Val as its authors' ``dfr_evaluate_spurious.py`` (PolinaKirichenko/deep_feature_reweighting)
does it, with scikit-learn's L1 logistic regression (liblinear):

* **features**: the ERM classifier's penultimate layer (the pooled ResNet features that ``fc`` reads), on
  un-augmented images through f's own eval transform (``classifier.transform``), for the training split
  (only to standardise; all of it, with the rows ``class_balance: subsample`` marks ``excluded``, as the
  authors' scaler is fit on their whole training split) and the validation split (what DFR fits on). The test split is never read here:
  ``evaluate`` scores DFR's model (``dfr/model.pt``) on it like ERM's and DDB's.
* **choosing C** (``dfr_on_validation_tune``): validation is split in two halves; a group-balanced
  subsample of the *fit* half (every group drawn down to its smallest group) is standardised with its
  own StandardScaler, a regression is fit per C of ``dfr.c_grid``, and the C with the best worst-group
  accuracy on the other, *select* half wins (ties: the first in the grid's order, as ``np.argmax``).
  One difference from the authors' code: the halves are split per group (stratified), not by one random
  permutation of the whole split, so each half holds every group even on a small validation split.
* **the final model** (``dfr_on_validation_eval``): ``dfr.subsamples`` regressions with the selected C,
  each on its own group-balanced subsample of the *whole* validation split, standardised with a
  StandardScaler fit on the *training* split's features (the authors' code fits this one on the training
  embeddings; the tuning scaler above on the fit half), coefficients and intercepts averaged. The
  authors' DFR^Tr_Val averages 20 (``num_retrains=20``; their DFR on the training split uses 10).
* **float32**: the features and the head compute in float32 (:func:`dfr_precision`), whatever
  ``classifier.precision`` says for f's other passes: the standardisation divides by each feature's spread,
  so bf16's rounding of the features and the head's weights flipped 2-6 % of the predictions near the
  boundary in ``benchmarks/dfr.py`` (ResNet-50 on an H100), for about 10 % more time.

The averaged regression is folded into a linear head (standardisation included) that replaces ``fc``:
``dfr/model.pt`` is an ordinary classifier checkpoint, so ``evaluate`` runs it through the same code as
ERM and DDB. Every draw comes from the global seed (``ddb.seeding``), so a rerun gives the same model.
"""

from __future__ import annotations

import inspect
import logging
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from .errors import DDBError
from .metrics import group_accuracies, summarize
from .seeding import derive_seed, numpy_rng
from .settings import ClassifierSettings, DatasetSettings
from .training import TRAINING_SPLITS

log = logging.getLogger("ddb")

# The authors' grid for Waterbirds (dfr_evaluate_spurious.py C_OPTIONS); CelebA's is FORMAT_DEFAULTS'.
DEFAULT_C_GRID = (1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01)
HALVES = ("fit", "select")


# ---------------------------------------------------------------------------------------------------
# features
# ---------------------------------------------------------------------------------------------------

def extract_features(model: nn.Module, rows: pd.DataFrame, image_size: int, batch_size: int, device,
                     transform: str = "stretch", precision=None) -> np.ndarray:
    """The input of ``model.fc`` (the penultimate layer) for every row, in order: float32, (n, d).

    The images go through :func:`ddb.training.predict_logits` with f's eval transform and ``precision``
    (:mod:`ddb.precision`; None: float32), exactly as ``evaluate`` sees them; a forward hook on ``fc``
    keeps what it reads.
    """
    from .datasets.loading import ImageDataset
    from .models.classifier import eval_transform
    from .training import predict_logits

    captured: list[torch.Tensor] = []
    handle = model.fc.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0].float().cpu()))
    try:
        predict_logits(model, ImageDataset.from_manifest(rows, eval_transform(image_size, transform)), batch_size,
                       device, desc="dfr features", precision=precision)
    finally:
        handle.remove()
    if not captured:
        return np.zeros((0, model.fc.in_features), dtype=np.float32)
    return torch.cat(captured).numpy().astype(np.float32, copy=False)


def dfr_precision(classifier: ClassifierSettings | None, device):
    """How DFR's features (the rule) and its model (``evaluate``) compute: float32, with the memory format
    and TF32 of ``classifier`` (:func:`ddb.precision.classifier_precision` with ``precision: fp32``)."""
    from .precision import classifier_precision

    return classifier_precision({**(asdict(classifier) if classifier else {}), "precision": "fp32"}, device)


def feature_columns(dim: int) -> list[str]:
    return [f"f{i:04d}" for i in range(dim)]


# ---------------------------------------------------------------------------------------------------
# the validation split: its groups, the halves, balanced subsamples
# ---------------------------------------------------------------------------------------------------

def check_validation_groups(manifest: pd.DataFrame, dataset: str) -> list[str]:
    """The groups DFR balances: those of the validation split. Stops (DDBError naming the dataset and
    the group) when a class has no validation image, when validation lacks a group that another split has
    with a spurious value validation does have (e.g. Waterbirds' waterbird_land), or when a validation
    group has fewer than two images (one for each half)."""
    where = f"dataset {dataset} (data/manifest.parquet, split val)"
    val = manifest[manifest["split"] == "val"]
    classes = sorted(int(y) for y in manifest["y"].unique())
    missing_classes = [y for y in classes if not (val["y"] == y).any()]
    if missing_classes:
        names = _class_names(manifest, missing_classes)
        raise DDBError(where, f"the validation split has no image of class {', '.join(names)}, so DFR cannot "
                       "fit its last layer on it", "give the validation split images of every class, or set "
                       f"datasets.{dataset}.dfr: false")
    if "spurious" in manifest:
        spurious_in_val = set(val["spurious"].astype(str))
        others = manifest[(manifest["split"] != "val") & manifest["spurious"].astype(str).isin(spurious_in_val)]
        absent = sorted(set(others["group"].astype(str)) - set(val["group"].astype(str)))
        if absent:
            raise DDBError(where, f"the validation split has no image of group {', '.join(absent)} (the other "
                           "splits have it), so DFR's group-balanced subsamples cannot hold it",
                           "add validation images of that group, or set "
                           f"datasets.{dataset}.dfr: false to leave DFR out of eval.json")
    counts = val.groupby("group").size()
    small = sorted(str(g) for g, n in counts.items() if n < 2)
    if small:
        raise DDBError(where, f"group {', '.join(small)} has {int(counts[small[0]])} validation image(s); DFR needs "
                       "at least two per group (one in each half)",
                       f"add validation images of that group, or set datasets.{dataset}.dfr: false")
    return sorted(str(g) for g in counts.index)


def _class_names(manifest: pd.DataFrame, ys: list[int]) -> list[str]:
    if "class_name" not in manifest:
        return [str(y) for y in ys]
    names = manifest.drop_duplicates("y").set_index("y")["class_name"].astype(str).to_dict()
    return [f"{names.get(y, y)} (y {y})" for y in ys]


def split_halves(groups: np.ndarray, seed: int) -> np.ndarray:
    """"fit" or "select" for each validation row: every group shuffled (seeded per group) and cut in two,
    the select half taking ⌊n/2⌋ (the authors' ``n_val = len(x_val) // 2``) and the fit half the rest."""
    groups = np.asarray(groups).astype(str)
    halves = np.empty(len(groups), dtype=object)
    for group in sorted(set(groups)):
        rows = np.flatnonzero(groups == group)
        order = numpy_rng(seed, "dfr", "halves", group).permutation(rows)
        n_select = len(rows) // 2
        halves[order[:n_select]] = "select"
        halves[order[n_select:]] = "fit"
    return halves.astype(str)


def balanced_subsample(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row indices of a group-balanced subsample: each group (sorted by name) shuffled and cut to the size
    of the smallest group, as the authors' ``balance_val``."""
    groups = np.asarray(groups).astype(str)
    names = sorted(set(groups))
    members = [np.flatnonzero(groups == g) for g in names]
    size = min(len(m) for m in members)
    return np.concatenate([rng.permutation(m)[:size] for m in members])


# ---------------------------------------------------------------------------------------------------
# the regression (scikit-learn)
# ---------------------------------------------------------------------------------------------------

def _logistic_regression(C: float, random_state: int):
    """L1-regularised logistic regression with liblinear (the authors' ``penalty="l1"``). scikit-learn 1.8
    deprecated ``penalty`` for ``l1_ratio=1``; before it, ``l1_ratio`` alone would silently mean L2."""
    from sklearn.linear_model import LogisticRegression

    default_penalty = inspect.signature(LogisticRegression).parameters["penalty"].default
    penalty = {"l1_ratio": 1.0} if default_penalty == "deprecated" else {"penalty": "l1"}
    return LogisticRegression(C=float(C), solver="liblinear", random_state=random_state, **penalty)


def fit_l1(x: np.ndarray, y: np.ndarray, C: float, n_classes: int, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    """(coef, intercept) of an L1 logistic regression: one row for two classes (the decision z, class 1
    when z > 0), one per class otherwise (one-vs-rest, liblinear's scheme for several classes)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.multiclass import OneVsRestClassifier

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        if n_classes == 2:
            model = _logistic_regression(C, random_state).fit(x, y)
            coef, intercept = model.coef_, model.intercept_
        else:
            model = OneVsRestClassifier(_logistic_regression(C, random_state)).fit(x, y)
            coef = np.concatenate([e.coef_ for e in model.estimators_])
            intercept = np.concatenate([e.intercept_ for e in model.estimators_])
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        log.info("dfr: liblinear did not converge for C=%g (%d samples); its last iterate is used", C, len(x))
    return np.asarray(coef, dtype=np.float64), np.asarray(intercept, dtype=np.float64)


def decision(x: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64) @ coef.T + intercept


def predict(x: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """Class indices, as scikit-learn predicts: z > 0 for two classes, the largest score otherwise."""
    scores = decision(x, coef, intercept)
    return (scores[:, 0] > 0).astype(int) if scores.shape[1] == 1 else scores.argmax(1)


class Standardizer:
    """scikit-learn's StandardScaler, kept as its mean and scale (what the head folds in)."""

    def __init__(self, x: np.ndarray):
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(np.asarray(x, dtype=np.float64))
        self.mean, self.scale = scaler.mean_.astype(np.float64), scaler.scale_.astype(np.float64)
        self._scaler = scaler

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._scaler.transform(np.asarray(x, dtype=np.float64))


# ---------------------------------------------------------------------------------------------------
# DFR^Tr_Val
# ---------------------------------------------------------------------------------------------------

@dataclass
class DFRFit:
    halves: np.ndarray               # "fit" / "select" per validation row
    halves_table: pd.DataFrame       # per group: n_val, n_fit, n_select, n_fit_balanced, n_final_balanced
    selection: pd.DataFrame          # per C: select-half WGA, mean accuracy, group accuracies, selected
    selected_c: float
    coef: np.ndarray                 # the averaged regression on standardised features, (k, d)
    intercept: np.ndarray            # (k,)
    subsample_coefs: np.ndarray      # (subsamples, k, d)
    subsample_intercepts: np.ndarray  # (subsamples, k)
    scaler_mean: np.ndarray          # the final StandardScaler (fit on the training features)
    scaler_scale: np.ndarray

    @property
    def subsamples(self) -> int:
        return len(self.subsample_coefs)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """DFR's class for raw (unstandardised) features ``x``."""
        return predict((np.asarray(x, dtype=np.float64) - self.scaler_mean) / self.scaler_scale, self.coef,
                       self.intercept)

    def head(self, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
        """(weight (n_classes, d), bias (n_classes,)) of a linear layer on raw features with DFR's argmax:
        the standardisation folded in (w / σ, b − Σ w μ / σ); two classes get logits (0, z)."""
        weight = self.coef / self.scaler_scale
        bias = self.intercept - weight @ self.scaler_mean
        if n_classes == 2 and len(weight) == 1:
            weight = np.concatenate([np.zeros_like(weight), weight])
            bias = np.concatenate([[0.0], bias])
        return weight, bias


def fit_dfr(train_x: np.ndarray, val_x: np.ndarray, val_y: np.ndarray, val_groups: np.ndarray, *,
            c_grid, subsamples: int, seed: int, n_classes: int | None = None) -> DFRFit:
    """DFR^Tr_Val on features: choose C on the validation halves, then average ``subsamples`` fits."""
    val_x, val_y = np.asarray(val_x, dtype=np.float64), np.asarray(val_y).astype(int)
    val_groups = np.asarray(val_groups).astype(str)
    n_classes = int(n_classes or val_y.max() + 1)
    random_state = derive_seed(seed, "dfr", "liblinear") % 2**32
    halves = split_halves(val_groups, seed)

    # choosing C: fit on a balanced subsample of the fit half, scaled by its own scaler (the authors')
    fit_rows = np.flatnonzero(halves == "fit")
    fit_rows = fit_rows[balanced_subsample(val_groups[fit_rows], numpy_rng(seed, "dfr", "tune"))]
    select_rows = np.flatnonzero(halves == "select")
    scaler = Standardizer(val_x[fit_rows])
    x_fit, x_select = scaler(val_x[fit_rows]), scaler(val_x[select_rows])
    records = []
    for order, C in enumerate(c_grid):
        coef, intercept = fit_l1(x_fit, val_y[fit_rows], C, n_classes, random_state)
        correct = predict(x_select, coef, intercept) == val_y[select_rows]
        per_group = group_accuracies(val_groups[select_rows], correct)
        metrics = summarize(per_group)
        records.append({"order": order, "C": float(C),
                        "val_worst_group_accuracy": metrics["worst_group_accuracy"],
                        "val_mean_accuracy": metrics["mean_accuracy"],
                        "nonzero_coefficients": int(np.count_nonzero(coef)),
                        **{f"accuracy_{g}": float(a) for g, a in metrics["group_accuracy"].items()}})
    selection = pd.DataFrame(records)
    best = int(np.argmax(selection["val_worst_group_accuracy"].to_numpy()))  # ties: the first in the grid
    selection.insert(len(selection.columns), "selected", selection["order"] == best)
    selected_c = float(selection["C"].iloc[best])
    log.info("dfr: C=%g selected (select-half WGA %.3f) from %s", selected_c,
             selection["val_worst_group_accuracy"].iloc[best], list(map(float, c_grid)))

    # the final model: balanced subsamples of the whole validation split, the training split's scaler
    final_scaler = Standardizer(train_x)
    x_val = final_scaler(val_x)
    coefs, intercepts = [], []
    for i in range(subsamples):
        rows = balanced_subsample(val_groups, numpy_rng(seed, "dfr", "subsample", i))
        coef, intercept = fit_l1(x_val[rows], val_y[rows], selected_c, n_classes, random_state)
        coefs.append(coef)
        intercepts.append(intercept)

    names = sorted(set(val_groups))
    fit_half = pd.Series(val_groups[halves == "fit"]).value_counts()
    balanced = pd.Series(val_groups[fit_rows]).value_counts()
    table = pd.DataFrame({
        "group": names,
        "y": [int(val_y[val_groups == g][0]) for g in names],
        "n_val": [int((val_groups == g).sum()) for g in names],
        "n_fit": [int(fit_half.get(g, 0)) for g in names],
        "n_select": [int(((val_groups == g) & (halves == "select")).sum()) for g in names],
        "n_fit_balanced": [int(balanced.get(g, 0)) for g in names],
        "n_final_balanced": [int(min((val_groups == h).sum() for h in names))] * len(names),
    })
    return DFRFit(halves=halves, halves_table=table, selection=selection, selected_c=selected_c,
                  coef=np.mean(coefs, axis=0), intercept=np.mean(intercepts, axis=0),
                  subsample_coefs=np.stack(coefs), subsample_intercepts=np.stack(intercepts),
                  scaler_mean=final_scaler.mean, scaler_scale=final_scaler.scale)


def coefficients_table(fit: DFRFit) -> pd.DataFrame:
    """The final model as a table: each subsample's regression, their average, and the scaler's mean and
    scale (rows ``part``: subsample / average / scaler_mean / scaler_scale), one column per feature."""
    columns = feature_columns(fit.coef.shape[1])
    records = []
    for i, (coef, intercept) in enumerate(zip(fit.subsample_coefs, fit.subsample_intercepts)):
        for output, (row, b) in enumerate(zip(coef, intercept)):
            records.append({"part": "subsample", "subsample": i, "output": output, "C": fit.selected_c,
                            "intercept": float(b), **dict(zip(columns, row))})
    for output, (row, b) in enumerate(zip(fit.coef, fit.intercept)):
        records.append({"part": "average", "subsample": -1, "output": output, "C": fit.selected_c,
                        "intercept": float(b), **dict(zip(columns, row))})
    for part, values in (("scaler_mean", fit.scaler_mean), ("scaler_scale", fit.scaler_scale)):
        records.append({"part": part, "subsample": -1, "output": -1, "C": fit.selected_c, "intercept": float("nan"),
                        **dict(zip(columns, values))})
    return pd.DataFrame(records)


def features_table(rows: pd.DataFrame, features: np.ndarray, halves: np.ndarray) -> pd.DataFrame:
    """sample_id, split, y, group, half (fit / select) and one float32 column per feature."""
    meta = pd.DataFrame({"sample_id": rows["sample_id"].to_numpy(), "split": rows["split"].to_numpy(),
                         "y": rows["y"].to_numpy().astype(int), "group": rows["group"].astype(str).to_numpy(),
                         "half": halves})
    values = pd.DataFrame(features.astype(np.float32), columns=feature_columns(features.shape[1]))
    return pd.concat([meta, values], axis=1)


@dataclass
class DFRResult:
    fit: DFRFit
    model: nn.Module                 # the ERM classifier with DFR's head in place of fc
    features: pd.DataFrame           # the validation features, with their half
    coefficients: pd.DataFrame


def deep_feature_reweighting(model: nn.Module, manifest: pd.DataFrame, settings: DatasetSettings, *, seed: int,
                             dataset: str, device, precision=None) -> DFRResult:
    """The whole step on the ERM ``model``: features of train and val (in ``precision``, the setting
    ``evaluate`` runs the result in), C chosen, the averaged head; ``settings``: the dataset's (its
    classifier and dfr sections)."""
    groups = check_validation_groups(manifest, dataset)
    dfr, classifier = settings.dfr, settings.classifier
    # a stable row order: the manifest's, by sample id within a split
    # the whole training split, the rows a class subsample leaves out included: what the authors' scaler sees
    train = (manifest[manifest["split"].isin(TRAINING_SPLITS)].sort_values("sample_id", kind="stable")
             .reset_index(drop=True))
    val = manifest[manifest["split"] == "val"].sort_values("sample_id", kind="stable").reset_index(drop=True)
    if train.empty:
        raise DDBError(f"dataset {dataset} (data/manifest.parquet)", "has no training image, whose features DFR "
                       "standardises with", "check the manifest's split column")
    log.info("dfr: %d training and %d validation images (groups %s)", len(train), len(val), ", ".join(groups))
    extract = dict(image_size=classifier.image_size, batch_size=dfr.batch_size, device=device,
                   transform=classifier.transform, precision=precision)
    train_x = extract_features(model, train, **extract)
    val_x = extract_features(model, val, **extract)
    n_classes = model.fc.out_features
    fit = fit_dfr(train_x, val_x, val["y"].to_numpy(), val["group"].to_numpy(), c_grid=dfr.c_grid,
                  subsamples=dfr.subsamples, seed=seed, n_classes=n_classes)
    weight, bias = fit.head(n_classes)
    head = nn.Linear(weight.shape[1], n_classes)
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(weight, dtype=head.weight.dtype))
        head.bias.copy_(torch.as_tensor(bias, dtype=head.bias.dtype))
    model.fc = head.to(next(model.parameters()).device)
    return DFRResult(fit=fit, model=model.eval(), features=features_table(val, val_x, fit.halves),
                     coefficients=coefficients_table(fit))
