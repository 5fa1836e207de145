"""Text-prompted masks of the causal object: the paper's LangSAM, built on transformers.

GroundingDINO finds the boxes that match a text prompt such as ``"bird."``; SAM (ViT) or SAM 2.1
(Hiera) turns one of them into a mask: the first box above the thresholds, as the paper's authors read
LangSAM's output, or the best-scoring one (``masking.boxes``). :class:`TextPromptedMasker` runs both
on a whole batch of images: one detector forward for the batch, then one SAM forward for the boxes of
the images where something was detected.

Every model reference is a hub id, a local folder (``save_pretrained`` output) or ``tiny``: a seeded
miniature of the same architecture with random weights, so tests and the demo run offline on a CPU.
The miniatures' processors are built here too (GroundingDINO's BERT tokenizer from a vocabulary we
write ourselves), since nothing may be downloaded. ``random:IDEA-Research/grounding-dino-base`` (and
tiny) and ``random:facebook/sam-vit-huge`` (and base) are the published architectures and image
processors at full size with seeded random weights (:mod:`ddb.models.random_init`): a rehearsal, as is
``random:facebook/sam2.1-hiera-small``. ``tiny-sam2`` is the SAM 2 miniature.
"""

from __future__ import annotations

import inspect
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import DDBError
from ..seeding import derive_seed
from .loading import TINY, hub_cache_dir, hub_source, is_local, model_load_error
from .random_init import is_random

DETECTOR_WHAT = "GroundingDINO detector"
SEGMENTER_WHAT = "SAM segmenter"
# The config's defaults, named in error messages as what to pre-download.
DEFAULT_DETECTOR_ID = "IDEA-Research/grounding-dino-base"
DEFAULT_SEGMENTER_ID = "facebook/sam-vit-huge"
# Architectures whose processor has post_process_grounded_object_detection with per-token logits;
# OWL-ViT and OmDet are zero-shot detectors too but post-process differently.
GROUNDED_DETECTOR_TYPES = ("grounding-dino", "mm-grounding-dino")
SEGMENTER_TYPES = ("sam", "sam2")
# The SAM 2 miniature's reference (``tiny`` is the SAM one).
TINY_SAM2 = "tiny-sam2"
# Which detection goes to SAM. LangSAM (luca-medeiros/lang-segment-anything at 918043e) keeps the
# boxes above box 0.3 / text 0.25 (lang_sam.py:22-23, models/gdino.py:45-51: in query order, not
# sorted), segments every one of them, one mask each (lang_sam.py:57-65; models/sam.py:92,
# multimask_output=False) and returns them stacked, never merged; the paper's authors keep the first
# (ArianYp/DDB generate.py:136 at 2b95c24f, `mask_dict["masks"][0]`). SAM's prompts do not interact,
# so segmenting only the chosen box gives that box's mask exactly.
BOX_CHOICES = ("first", "best")

# The miniature GroundingDINO's vocabulary: BERT's special tokens, single characters (and their
# "##" continuations, so any lowercase word tokenizes without [UNK]) and the prompt words we use.
TINY_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TINY_CHARACTERS = [*"abcdefghijklmnopqrstuvwxyz", "."]
TINY_WORDS = ["bird", "hair", "animal", "person", "cat", "dog", "a", "photo", "of"]
# Longest prompt the miniature reads, in tokens; longer prompts are truncated by the model itself.
TINY_MAX_TEXT_LEN = 32
# Input resolutions of the miniatures: small enough for a CPU forward pass in milliseconds. The
# detector's coarsest level (a stride-2 conv on Swin's last stage, 1/64 of the input) must keep at
# least 2x2 positions: GroupNorm over its 32 single-channel groups rejects a 1x1 map of one image,
# which a 64-pixel input gave (masking.batch_size 1, or a shard's last batch of one image).
TINY_DETECTOR_SHORTEST_EDGE, TINY_DETECTOR_LONGEST_EDGE = 128, 192
TINY_SAM_IMAGE_SIZE = 24
TINY_SAM2_IMAGE_SIZE = 64


@dataclass(frozen=True)
class MaskResult:
    """The mask of one image: ``mask`` is bool H×W at the image's own size, all False if nothing was found."""

    mask: np.ndarray
    detected: bool
    box: tuple[float, float, float, float] | None  # x0, y0, x1, y1 in pixels of the original image
    score: float  # detection score of ``box``; NaN when nothing was detected


# ---------------------------------------------------------------------------------------------
# Seeded miniatures
# ---------------------------------------------------------------------------------------------


def _seeded_construct(build, seed: int):
    """Build a model with weights drawn from ``seed``, leaving the caller's global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def build_tiny_tokenizer(vocab_size: int | None = None):
    """A BERT WordPiece tokenizer over the miniature vocabulary (written to a temporary vocab.txt).

    With ``vocab_size`` (the `random:` detectors: bert-base-uncased's 30522), the same words sit among
    unused entries at bert-base-uncased's ids for the tokens GroundingDINO treats as special
    (:data:`BERT_IDS`), so ids and the embedding matrix are those of the published tokenizer.
    """
    from transformers import BertTokenizer

    vocabulary = [*TINY_SPECIAL_TOKENS, *TINY_CHARACTERS, *(f"##{c}" for c in TINY_CHARACTERS), *TINY_WORDS]
    if vocab_size is not None:
        vocabulary = _published_bert_vocabulary(vocab_size, vocabulary)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "vocab.txt").write_text("\n".join(vocabulary) + "\n")
        # from_pretrained on a folder holding vocab.txt works in transformers 4 and 5 alike; the
        # constructor does not (v5 renamed vocab_file to vocab and ignores the old keyword).
        tokenizer = BertTokenizer.from_pretrained(folder, local_files_only=True)
    tokenizer.model_max_length = TINY_MAX_TEXT_LEN if vocab_size is None else BERT_MAX_LENGTH
    return tokenizer


# bert-base-uncased's ids of its special tokens and of the two that GroundingDINO's text attention mask
# treats as phrase separators ("." and "?"; SPECIAL_TOKENS in transformers' modeling_grounding_dino).
BERT_IDS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103, ".": 1012, "?": 1029}
BERT_MAX_LENGTH = 512
RANDOM_WORDS = ["insect", "bee", "cockroach", "hair", "face", "object", "thing"]


def _published_bert_vocabulary(vocab_size: int, words: list[str]) -> list[str]:
    vocabulary: list[str | None] = [None] * vocab_size
    for token, index in BERT_IDS.items():
        vocabulary[index] = token
    free = (i for i in range(vocab_size) if vocabulary[i] is None and i > max(BERT_IDS.values()))
    for token in dict.fromkeys(words + RANDOM_WORDS):
        if token not in BERT_IDS:
            vocabulary[next(free)] = token
    return [token if token is not None else f"[unused{i}]" for i, token in enumerate(vocabulary)]


def build_tiny_grounding_dino(seed: int):
    """A miniature GroundingDINO (Swin + BERT backbones) with seeded random weights, and its processor.

    Sizes follow transformers' own GroundingDinoModelTester (d_model 32, 2 layers, 4 heads, Swin
    embed_dim 8 with depths [1, 1, 1, 1], BERT hidden 8).
    """
    from transformers import (BertConfig, GroundingDinoConfig, GroundingDinoForObjectDetection,
                              GroundingDinoImageProcessor, GroundingDinoProcessor, SwinConfig)

    tokenizer = build_tiny_tokenizer()
    swin_config = SwinConfig(image_size=TINY_DETECTOR_SHORTEST_EDGE, window_size=7, embed_dim=8,
                             depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], out_indices=[2, 3, 4])
    text_config = BertConfig(vocab_size=len(tokenizer), hidden_size=8, num_hidden_layers=2,
                             num_attention_heads=2, intermediate_size=8,
                             max_position_embeddings=TINY_MAX_TEXT_LEN)
    config = GroundingDinoConfig(
        backbone_config=swin_config, text_config=text_config, max_text_len=TINY_MAX_TEXT_LEN,
        d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
        encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=8, num_feature_levels=4,
        encoder_n_points=2, decoder_n_points=2,
    )
    model = _seeded_construct(lambda: GroundingDinoForObjectDetection(config), seed).eval()
    image_processor = GroundingDinoImageProcessor(
        size={"shortest_edge": TINY_DETECTOR_SHORTEST_EDGE, "longest_edge": TINY_DETECTOR_LONGEST_EDGE})
    return model, GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)


def build_tiny_sam(seed: int):
    """A miniature SAM with seeded random weights, and its processor (sizes from transformers' SamModelTester)."""
    from transformers import (SamConfig, SamImageProcessor, SamMaskDecoderConfig, SamModel, SamProcessor,
                              SamPromptEncoderConfig, SamVisionConfig)

    prompt_hidden = 32
    vision_config = SamVisionConfig(
        image_size=TINY_SAM_IMAGE_SIZE, patch_size=2, hidden_size=36, intermediate_size=72, output_channels=32,
        num_hidden_layers=2, num_attention_heads=4, window_size=14, global_attn_indexes=[1],
        # the shared positional embedding encodes box corners for the prompt encoder: it must emit
        # prompt_hidden features, i.e. two halves of num_pos_feats (sin and cos)
        num_pos_feats=prompt_hidden // 2,
    )
    prompt_encoder_config = SamPromptEncoderConfig(image_size=TINY_SAM_IMAGE_SIZE, patch_size=2,
                                                   hidden_size=prompt_hidden, mask_input_channels=4)
    mask_decoder_config = SamMaskDecoderConfig(hidden_size=prompt_hidden, mlp_dim=64, num_hidden_layers=2,
                                               num_attention_heads=4, iou_head_hidden_dim=32)
    config = SamConfig(vision_config=vision_config, prompt_encoder_config=prompt_encoder_config,
                       mask_decoder_config=mask_decoder_config)
    model = _seeded_construct(lambda: SamModel(config), seed).eval()
    image_processor = SamImageProcessor(
        size={"longest_edge": TINY_SAM_IMAGE_SIZE},
        pad_size={"height": TINY_SAM_IMAGE_SIZE, "width": TINY_SAM_IMAGE_SIZE},
        mask_size={"longest_edge": TINY_SAM_IMAGE_SIZE // 2},
        mask_pad_size={"height": TINY_SAM_IMAGE_SIZE // 2, "width": TINY_SAM_IMAGE_SIZE // 2},
    )
    return model, SamProcessor(image_processor=image_processor)


def build_tiny_sam2(seed: int):
    """A miniature SAM 2 (Hiera backbone) with seeded random weights, and its processor.

    Sizes in the spirit of transformers' Sam2ModelTester: Hiera hidden 12 over four stages (one block each,
    two in the third so that its second block can attend globally: a stage's first block pools queries
    and must stay windowed), FPN and prompt/mask decoder hidden 32, a 64-pixel input.
    """
    from transformers import (Sam2Config, Sam2HieraDetConfig, Sam2ImageProcessor, Sam2MaskDecoderConfig, Sam2Model,
                              Sam2Processor, Sam2PromptEncoderConfig, Sam2VisionConfig)

    size = TINY_SAM2_IMAGE_SIZE
    backbone = Sam2HieraDetConfig(
        hidden_size=12, num_attention_heads=1, blocks_per_stage=[1, 1, 2, 1], embed_dim_per_stage=[12, 24, 48, 96],
        num_attention_heads_per_stage=[1, 1, 1, 1], window_size_per_stage=[4, 4, 4, 4], global_attention_blocks=[3],
        image_size=[size, size], window_positional_embedding_background_size=[2, 2])
    # the FPN reads the three finest stages (strides 4, 8, 16), coarsest channel list first
    vision = Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=[96, 48, 24, 12],
                              backbone_feature_sizes=[[size // 4] * 2, [size // 8] * 2, [size // 16] * 2],
                              fpn_hidden_size=32)
    prompt_encoder = Sam2PromptEncoderConfig(hidden_size=32, image_size=size, patch_size=16, mask_input_channels=4)
    mask_decoder = Sam2MaskDecoderConfig(hidden_size=32, mlp_dim=64, num_hidden_layers=2, num_attention_heads=4,
                                         iou_head_hidden_dim=32)
    config = Sam2Config(vision_config=vision, prompt_encoder_config=prompt_encoder, mask_decoder_config=mask_decoder)
    model = _seeded_construct(lambda: Sam2Model(config), seed).eval()
    image_processor = Sam2ImageProcessor(size={"height": size, "width": size},
                                         mask_size={"height": size // 4, "width": size // 4})
    return model, Sam2Processor(image_processor=image_processor)


def _preprocessor(manifest: dict) -> dict:
    from .random_init import read_config

    return {k: v for k, v in read_config(manifest, "preprocessor_config.json").items() if k != "image_processor_type"}


def build_random_grounding_dino(ref: str, seed: int, device=None, config_key: str = "masking.detector"):
    """``random:IDEA-Research/grounding-dino-{tiny,base}``: the published config and image processor
    (``ddb/assets/configs``), seeded random weights, a BERT tokenizer with bert-base-uncased's ids."""
    from transformers import (GroundingDinoConfig, GroundingDinoForObjectDetection, GroundingDinoImageProcessor,
                              GroundingDinoProcessor)

    from .random_init import build_seeded, random_manifest, read_config

    manifest = random_manifest(ref, config_key, "grounding_dino")
    config = GroundingDinoConfig.from_dict(read_config(manifest, "config.json"))
    tokenizer = build_tiny_tokenizer(vocab_size=config.text_config.vocab_size)
    model = build_seeded(lambda: GroundingDinoForObjectDetection(config), derive_seed(seed, "random", ref), device)
    return model.eval(), GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(**_preprocessor(manifest)),
                                                tokenizer=tokenizer)


def build_random_sam(ref: str, seed: int, device=None, config_key: str = "masking.segmenter"):
    """``random:facebook/sam-vit-{base,huge}`` and ``random:facebook/sam2.1-hiera-small``: the published config
    and image processor, seeded random weights; the config's model_type picks SAM or SAM 2."""
    from transformers import SamConfig, SamImageProcessor, SamModel, SamProcessor

    from .random_init import build_seeded, random_manifest, read_config

    manifest = random_manifest(ref, config_key, "sam")
    published = read_config(manifest, "config.json")
    if published.get("model_type") == "sam2":
        from transformers import Sam2Config, Sam2ImageProcessor, Sam2Model, Sam2Processor

        config = Sam2Config.from_dict(published)
        model = build_seeded(lambda: Sam2Model(config), derive_seed(seed, "random", ref), device)
        return model.eval(), Sam2Processor(image_processor=Sam2ImageProcessor(**_preprocessor(manifest)))
    config = SamConfig(**{k: v for k, v in published.items() if k not in ("model_type", "architectures")})
    model = build_seeded(lambda: SamModel(config), derive_seed(seed, "random", ref), device)
    return model.eval(), SamProcessor(image_processor=SamImageProcessor(**_preprocessor(manifest)))


def save_tiny_models(directory: str | Path, seed: int) -> tuple[Path, Path]:
    """Save both miniatures (model + processor) to ``directory/grounding_dino`` and ``directory/sam``."""
    directory = Path(directory)
    saved = []
    for name, build in (("grounding_dino", build_tiny_grounding_dino), ("sam", build_tiny_sam)):
        model, processor = build(seed)
        model.save_pretrained(directory / name)
        processor.save_pretrained(directory / name)
        saved.append(directory / name)
    return saved[0], saved[1]


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def _dtype_for(device: torch.device) -> torch.dtype:
    # both models run fine in half precision on a GPU; CPUs lack fast float16 kernels
    return torch.float16 if device.type == "cuda" else torch.float32


def _load_error(ref: str, what: str, error: Exception, config_key: str, example_id: str) -> DDBError:
    """The shared loader message; for a local folder it also says how to get a model onto an offline machine."""
    shared = model_load_error(ref, what, error, config_key)
    if not is_local(ref):
        return shared
    fix = (f"{shared.fix}; to use a hub model offline, run `hf download {example_id}` (or `huggingface-cli "
           f"download {example_id}`) on a machine with network and copy its cache to {hub_cache_dir()}, or "
           f"`hf download {example_id} --local-dir <folder>` and set {config_key} to that folder")
    return DDBError(shared.where, shared.problem, fix)


def _from_pretrained(ref: str, what: str, example_id: str, accepted_types: tuple[str, ...], load, config_key: str):
    """Load ``ref`` (a local folder or hub id) with ``load(source, local_files_only)`` after checking its type.

    A hub id is looked up in the local cache first, so a cached model loads without any network
    request; only when it is missing there (and HF_HUB_OFFLINE is not set) is the hub asked.
    """
    from huggingface_hub import constants
    from transformers import AutoConfig

    local = is_local(ref)
    if local and not Path(ref).expanduser().is_dir():
        raise _load_error(ref, what, FileNotFoundError(ref), config_key, example_id)
    source, options = (str(Path(ref).expanduser()), {}) if local else hub_source(ref)
    files = {k: v for k, v in options.items() if k == "revision"}

    def check_then_load(local_files_only: bool):
        config = AutoConfig.from_pretrained(source, local_files_only=local_files_only, **files)
        if config.model_type not in accepted_types:
            problem = ValueError(f"it holds a {config.model_type!r} model, expected one of {list(accepted_types)}")
            raise _load_error(ref, what, problem, config_key, example_id)
        return load(source, local_files_only, options)

    try:
        try:
            return check_then_load(local_files_only=True)
        except OSError:
            if local or constants.HF_HUB_OFFLINE:
                raise
            return check_then_load(local_files_only=False)
    except DDBError:
        raise
    except (OSError, ValueError) as error:
        raise _load_error(ref, what, error, config_key, example_id) from error


def load_detector(ref: str, seed: int = 0, device: str | torch.device = "cpu", *,
                  config_key: str = "masking.detector"):
    """(model, processor) of a text-prompted detector: ``tiny``, ``random:org/name``, a local folder or a hub id;
    eval mode on ``device``."""
    device = torch.device(device)
    if ref == TINY:
        model, processor = build_tiny_grounding_dino(seed)
    elif is_random(ref):
        model, processor = build_random_grounding_dino(ref, seed, device, config_key)
    else:
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        def load(source, local_files_only, options):
            files = {k: v for k, v in options.items() if k == "revision"}
            return (AutoModelForZeroShotObjectDetection.from_pretrained(source, local_files_only=local_files_only,
                                                                        **options),
                    AutoProcessor.from_pretrained(source, local_files_only=local_files_only, **files))

        model, processor = _from_pretrained(ref, DETECTOR_WHAT, DEFAULT_DETECTOR_ID, GROUNDED_DETECTOR_TYPES,
                                            load, config_key)
    return model.to(device=device, dtype=_dtype_for(device)).eval(), processor


def load_segmenter(ref: str, seed: int = 0, device: str | torch.device = "cpu", *,
                   config_key: str = "masking.segmenter"):
    """(model, processor) of SAM or SAM 2: ``tiny`` (SAM), ``tiny-sam2``, ``random:org/name``, a local folder or
    a hub id (its config's model_type picks the architecture); eval mode on ``device``."""
    device = torch.device(device)
    if ref == TINY:
        model, processor = build_tiny_sam(seed)
    elif ref == TINY_SAM2:
        model, processor = build_tiny_sam2(seed)
    elif is_random(ref):
        model, processor = build_random_sam(ref, seed, device, config_key)
    else:
        from transformers import AutoConfig, Sam2Model, Sam2Processor, SamModel, SamProcessor

        def load(source, local_files_only, options):
            files = {k: v for k, v in options.items() if k == "revision"}
            config = AutoConfig.from_pretrained(source, local_files_only=local_files_only, **files)
            model_class, processor_class = ((Sam2Model, Sam2Processor) if config.model_type == "sam2"
                                            else (SamModel, SamProcessor))
            return (model_class.from_pretrained(source, local_files_only=local_files_only, **options),
                    processor_class.from_pretrained(source, local_files_only=local_files_only, **files))

        model, processor = _from_pretrained(ref, SEGMENTER_WHAT, DEFAULT_SEGMENTER_ID, SEGMENTER_TYPES,
                                            load, config_key)
    return model.to(device=device, dtype=_dtype_for(device)).eval(), processor


# ---------------------------------------------------------------------------------------------
# Masking
# ---------------------------------------------------------------------------------------------


def normalize_prompt(prompt: str, config_key: str = "masking.prompt") -> str:
    """GroundingDINO was trained on lowercase phrases each ending in a dot ("bird.", "a cat. a dog.")."""
    text = prompt.strip().lower()
    if not text.strip("."):
        raise DDBError(f"config: {config_key}", f"the prompt {prompt!r} names no object",
                       'name the causal object, e.g. "bird."')
    return text if text.endswith(".") else text + "."


def _to_model(inputs, model: torch.nn.Module) -> dict:
    """Move processor outputs to the model's device; floating tensors also take the model's dtype."""
    parameter = next(model.parameters())
    return {name: value.to(device=parameter.device, dtype=parameter.dtype) if value.is_floating_point()
            else value.to(parameter.device)
            for name, value in inputs.items() if isinstance(value, torch.Tensor)}


class TextPromptedMasker:
    """Masks of the object named by ``prompt``: one GroundingDINO box per image (``boxes``: the first above
    the thresholds, LangSAM's first mask, or the best-scoring one), segmented by SAM or SAM 2."""

    def __init__(self, detector_ref: str, segmenter_ref: str, prompt: str, box_threshold: float,
                 text_threshold: float, seed: int = 0, device: str | torch.device = "cpu",
                 multimask: bool = False, boxes: str = "best"):
        if boxes not in BOX_CHOICES:
            raise DDBError("config: masking.boxes", f"{boxes!r} is not one of {list(BOX_CHOICES)}",
                           "use first (LangSAM's first mask, the paper's authors) or best (the best-scoring box)")
        self.prompt = normalize_prompt(prompt)
        self.multimask, self.boxes = multimask, boxes
        self.box_threshold, self.text_threshold = float(box_threshold), float(text_threshold)
        self.device = torch.device(device)
        self.detector, self.detector_processor = load_detector(detector_ref, seed, self.device)
        self.segmenter, self.segmenter_processor = load_segmenter(segmenter_ref, seed, self.device)

    @torch.inference_mode()
    def __call__(self, images: list[Image.Image]) -> list[MaskResult]:
        """One MaskResult per image, in order; images may differ in size."""
        if not images:
            return []
        images = [image.convert("RGB") for image in images]
        detections = self._detect(images)
        found = [index for index, detection in enumerate(detections) if detection is not None]
        masks = self._segment([images[i] for i in found], [detections[i][0] for i in found]) if found else []
        mask_of = dict(zip(found, masks))

        results = []
        for index, image in enumerate(images):
            if index in mask_of:
                box, score = detections[index]
                results.append(MaskResult(mask=mask_of[index], detected=True, box=box, score=score))
            else:
                results.append(MaskResult(mask=np.zeros((image.height, image.width), dtype=bool),
                                          detected=False, box=None, score=math.nan))
        return results

    def _detect(self, images: list[Image.Image]) -> list[tuple[tuple[float, float, float, float], float] | None]:
        """The chosen (box, score) above the thresholds for each image (:func:`choose_detection`), or None."""
        processor = self.detector_processor
        inputs = processor(images=images, text=[self.prompt] * len(images), return_tensors="pt")
        outputs = self.detector(**_to_model(inputs, self.detector))
        sizes = [(image.height, image.width) for image in images]
        post_process = processor.post_process_grounded_object_detection
        # keywords, not positions: the box threshold was called box_threshold before transformers 4.51
        box_keyword = "threshold" if "threshold" in inspect.signature(post_process).parameters else "box_threshold"
        detections = post_process(outputs, input_ids=inputs["input_ids"], text_threshold=self.text_threshold,
                                  target_sizes=sizes, **{box_keyword: self.box_threshold})

        chosen = []
        for detection, (height, width) in zip(detections, sizes):
            top = choose_detection(detection["scores"], self.boxes)
            if top is None:
                chosen.append(None)
                continue
            # boxes are converted from (center, size) and may stick out of the image; SAM wants them inside
            x0, y0, x1, y1 = detection["boxes"][top].float().tolist()
            box = (min(max(x0, 0.0), width), min(max(y0, 0.0), height),
                   min(max(x1, 0.0), width), min(max(y1, 0.0), height))
            chosen.append((box, float(detection["scores"][top])))
        return chosen

    def _segment(self, images: list[Image.Image], boxes: list[tuple[float, float, float, float]]) -> list[np.ndarray]:
        """SAM's mask for one box per image: its single mask (``multimask`` False, as LangSAM asks SAM), or
        the one of its three candidates with the best predicted IoU.

        SAM 2's single mask is the one its decoder picks by stability (transformers' Sam2MaskDecoderConfig
        dynamic_multimask_via_stability, on by default, as sam2's build_sam turns it on for the image
        predictor that LangSAM uses); masks are thresholded at 0, as SAM2ImagePredictor does.
        """
        processor = self.segmenter_processor
        inputs = processor(images=images, input_boxes=[[list(box)] for box in boxes], return_tensors="pt")
        model_inputs = _to_model(inputs, self.segmenter)
        outputs = self.segmenter(pixel_values=model_inputs["pixel_values"], input_boxes=model_inputs["input_boxes"],
                                 multimask_output=self.multimask)
        # upsample mask logits in float32 so that thresholding at 0 does not depend on the model's dtype
        if self.segmenter.config.model_type == "sam2":
            masks = processor.post_process_masks(outputs.pred_masks.float(), inputs["original_sizes"])
        else:
            masks = processor.image_processor.post_process_masks(
                outputs.pred_masks.float(), inputs["original_sizes"], inputs["reshaped_input_sizes"])
        best_candidate = outputs.iou_scores[:, 0].argmax(dim=-1).tolist()  # iou_scores: (batch, box, candidate)
        return [mask[0, candidate].cpu().numpy().astype(bool) for mask, candidate in zip(masks, best_candidate)]


def choose_detection(scores: torch.Tensor, boxes: str) -> int | None:
    """Index of the detection that goes to SAM among those above the thresholds (in GroundingDINO's
    post-processing order): ``first``, LangSAM's first mask as the paper's authors take it, or ``best``,
    the highest score; None when there is none."""
    if len(scores) == 0:
        return None
    return 0 if boxes == "first" else int(scores.argmax())
