"""Textual inversion's prompt templates for the paper's datasets.

The paper's authors train the tokens with diffusers' textual inversion script edited to fifteen object
templates that carry the class noun after the token (ArianYp/DDB textual_inversion.py,
``imagenet_templates_small``: "a photo of a {} animal", "a cropped photo of the {} animal", ...); each
step draws one per image. Those fifteen, as written there (one, "a cropped photo of a", twice, so it is
drawn twice as often), are :data:`AUTHORS_TEMPLATE_PREFIXES`; :func:`object_templates` puts a dataset's
object phrase after each, e.g. ``"{} bird"`` gives "a photo of a {} bird".
"""

from __future__ import annotations

AUTHORS_TEMPLATE_PREFIXES = (
    "a photo of a", "a cropped photo of the", "the photo of a", "a dark photo of the", "a photo of my",
    "a photo of the cool", "a close-up photo of a", "a bright photo of the", "a cropped photo of a",
    "a photo of the", "a photo of one", "a close-up photo of the", "a photo of a nice", "a cropped photo of a",
    "a good photo of a",
)


def object_templates(phrase: str) -> list[str]:
    """The fifteen templates with ``phrase`` (holding the token's ``{}``) as their object."""
    if phrase.count("{}") != 1:
        raise ValueError(f"the object phrase {phrase!r} must hold the token's {{}} exactly once")
    return [f"{prefix} {phrase}" for prefix in AUTHORS_TEMPLATE_PREFIXES]
