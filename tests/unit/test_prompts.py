"""Textual inversion's templates and image preparation, as the paper's authors' script has them."""

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))

from ddb.prompts import AUTHORS_TEMPLATE_PREFIXES, object_templates  # noqa: E402
from ddb.textual_inversion import _pixels  # noqa: E402


def test_the_fifteen_templates_put_the_object_phrase_after_each_prefix():
    templates = object_templates("{} animal")
    assert len(templates) == len(AUTHORS_TEMPLATE_PREFIXES) == 15
    assert templates[:3] == ["a photo of a {} animal", "a cropped photo of the {} animal", "the photo of a {} animal"]
    # the authors' list holds "a cropped photo of a" twice (indices 8 and 13): drawn twice as often
    assert templates.count("a cropped photo of a {} animal") == 2
    assert all(t.format("<cat>").endswith("<cat> animal") for t in templates)
    with pytest.raises(ValueError, match="exactly once"):
        object_templates("animal")


def test_images_are_resized_bicubic_to_the_square_without_crop_or_flip_and_scaled_to_minus_one_one():
    """The authors' TextualInversionDataset: resize((size, size), bicubic), flip_p 0, no center crop,
    then uint8 / 127.5 - 1."""
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8))  # landscape: a crop would show
    authors = np.asarray(image.resize((16, 16), resample=Image.BICUBIC)).astype(np.uint8) / 127.5 - 1.0
    ours = _pixels(image, 16).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours, authors, atol=1e-6)
