"""A dataset entry's step settings as typed, frozen records: one dataclass per config section.

:func:`dataset_settings` builds them once from a validated dataset entry, or from the sections of it a
rule passes as its ``cfg`` param (``rules/*.smk``: ``dataset_section(...)``); a step function takes the
record of the sections it reads (``ig: IgSettings``) instead of a dict. Every value is the validated
config's: the defaults are declared in ``workflow/schemas/config.schema.yaml`` and
``ddb.config.FORMAT_DEFAULTS`` and filled in by ``ddb.config.validate_config``, never here, so a record
has no field defaults. A key of a section that its dataclass does not name, or a field the section lacks,
is refused with a DDBError naming the key (the schema and these records name the same keys;
tests/unit/test_settings.py checks it). Values are kept as the config gives them (a list stays a list,
as the code always read it): the record is frozen, so a step cannot reassign a setting.

The rules' params stay the dict sections: what reruns after a config edit is decided on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from .errors import DDBError


@dataclass(frozen=True)
class ClassifierSettings:
    """``classifier``: the classifier f, its input and how it computes (ddb.models.classifier, ddb.precision)."""

    arch: str
    weights: str | None
    image_size: int
    transform: str
    precision: str
    channels_last: str | bool
    tf32: str | bool


@dataclass(frozen=True)
class ErmSettings:
    """``erm``: training f, or importing it (``checkpoint``)."""

    checkpoint: str | None
    epochs: int
    select_epoch: str
    batch_size: int
    lr: float
    optimizer: str
    momentum: float
    weight_decay: float
    augment: bool
    num_workers: int | None


@dataclass(frozen=True)
class LowLossSettings:
    """``low_loss``: K per class (one value per class after validation) and the batch of the loss pass."""

    k: list[int]
    batch_size: int


@dataclass(frozen=True)
class TextualInversionSettings:
    """``textual_inversion``: the learned token of each class."""

    enabled: bool
    model: str
    num_images: int
    source: str
    steps: int
    checkpoint_every: int
    lr: float
    scale_lr: bool
    batch_size: int
    resolution: int
    initializer_token: str
    dtype: str
    templates: list[str]


@dataclass(frozen=True)
class MaskingSettings:
    """``masking``: which masker, and how its masks are shaped."""

    masker: str
    mask_dir: str | None
    prompt: str
    detector: str
    segmenter: str
    multimask: bool
    boxes: str
    box_threshold: float
    text_threshold: float
    dilate: int
    shape: str
    batch_size: int


@dataclass(frozen=True)
class GenerationSettings:
    """``generation``: which sources are redrawn, how often, and how they are split into shards."""

    images_per_shard: int
    shards: int | None
    sources: str
    per_source: int
    max_sources_per_class: int | None


@dataclass(frozen=True)
class InpaintingSettings:
    """``inpainting``: the inpainting model and its sampling."""

    model: str
    steps: int
    guidance_scale: float
    resolution: int
    scheduler: str | None
    prompt: str
    negative_prompt: str | None
    paste_back: bool
    batch_size: int
    dtype: str


@dataclass(frozen=True)
class IgSettings:
    """``ig``: Integrated Gradients (captum): steps, captum's internal batch, images per batch."""

    n_steps: int
    internal_batch_size: int
    batch_size: int


@dataclass(frozen=True)
class PruneSettings:
    """``prune``: P per target class index, and whether the rules drop anything."""

    enabled: bool
    thresholds: list[float]


@dataclass(frozen=True)
class RetrainSettings:
    """``retrain``: fine-tuning f on real and kept generated images."""

    epochs: int
    patience: int | None
    batch_size: int
    batching: str
    generated_batch_size: int
    lr: float
    weight_decay: float
    gammas: list[float]
    reinit_head: bool
    head_init: str
    augment: bool
    num_workers: int | None


@dataclass(frozen=True)
class DfrSettings:
    """``dfr``: the DFR baseline."""

    enabled: bool
    c_grid: list[float]
    subsamples: int
    batch_size: int


# config section -> its record
SECTIONS: dict[str, type] = {
    "classifier": ClassifierSettings, "erm": ErmSettings, "low_loss": LowLossSettings,
    "textual_inversion": TextualInversionSettings, "masking": MaskingSettings, "generation": GenerationSettings,
    "inpainting": InpaintingSettings, "ig": IgSettings, "prune": PruneSettings, "retrain": RetrainSettings,
    "dfr": DfrSettings,
}
# Keys of a dataset entry that are no step's settings: where the data are and how they are read
# (prepare_dataset reads them from its params as they are), the rules' resources, checks and tuning plan.
NOT_STEP_SETTINGS = frozenset({
    "format", "root", "table", "object", "table_split", "check_images", "synthetic", "celeba", "metashift",
    "imagenet", "resources", "validation", "tune",
})


@dataclass(frozen=True)
class DatasetSettings:
    """A dataset entry's step settings. A section the entry (or a rule's ``cfg`` param) leaves out is None:
    the rule gives its step only the sections the step reads."""

    classes: list[str] | None
    minority_groups: Mapping[str, str | None] | None
    class_balance: str | None
    classifier: ClassifierSettings | None
    erm: ErmSettings | None
    low_loss: LowLossSettings | None
    textual_inversion: TextualInversionSettings | None
    masking: MaskingSettings | None
    generation: GenerationSettings | None
    inpainting: InpaintingSettings | None
    ig: IgSettings | None
    prune: PruneSettings | None
    retrain: RetrainSettings | None
    dfr: DfrSettings | None

    def minority_group(self, y: int) -> str | None:
        """The group name (``landbird_water``) of class ``y``'s minority group, or None if it has none."""
        from .config import minority_group_name

        return minority_group_name({"classes": self.classes, "minority_groups": self.minority_groups}, y)


TOP_LEVEL = ("classes", "minority_groups", "class_balance")
SCHEMA = "workflow/schemas/config.schema.yaml"


def section_settings(record: type, values: Mapping[str, Any], where: str):
    """``record`` (one of :data:`SECTIONS`' dataclasses) from config section ``values``; ``where`` names the
    section (``datasets.demo.ig``) in the error for a key it lacks or does not know."""
    if not isinstance(values, Mapping):
        raise DDBError(where, f"is {values!r}, not a section of settings", "give it as a mapping of keys")
    names = [field.name for field in fields(record)]
    for key in values:
        if key not in names:
            raise DDBError(f"{where}.{key}", f"is no setting of {record.__name__} (it has {', '.join(names)})",
                           f"remove it, or name it in both {SCHEMA} and ddb/settings.py")
    for name in names:
        if name not in values:
            raise DDBError(f"{where}.{name}", "is missing: validate_config fills every key in from the schema's "
                           "defaults", f"build the settings from the validated dataset entry; a new key belongs "
                           f"in {SCHEMA} with its default")
    return record(**{name: values[name] for name in names})


def dataset_settings(entry: Mapping[str, Any], dataset: str) -> DatasetSettings:
    """The typed settings of dataset ``dataset`` from its validated entry (``validate_config``'s), or from
    the sections of it a rule passes as its ``cfg`` param; refuses a key no record names."""
    where = f"datasets.{dataset}"
    for key in entry:
        if key not in SECTIONS and key not in TOP_LEVEL and key not in NOT_STEP_SETTINGS:
            raise DDBError(f"{where}.{key}", "is no setting of a dataset entry",
                           f"remove it, or name it in both {SCHEMA} and ddb/settings.py")
    sections = {name: section_settings(record, entry[name], f"{where}.{name}") if name in entry else None
                for name, record in SECTIONS.items()}
    return DatasetSettings(**{key: entry.get(key) for key in TOP_LEVEL}, **sections)
