"""Images: PNG bytes that depend only on the pixels, and decoding that fails with the file's name."""

from __future__ import annotations

import io
import os
import struct

import numpy as np
from PIL import Image

from ..errors import DDBError


def to_square(image: Image.Image, resolution: int, resample=Image.BICUBIC) -> Image.Image:
    """``image`` stretched to ``resolution`` x ``resolution``: how the inpainting pipeline (and so textual
    inversion) sees a source of any size."""
    return image.resize((resolution, resolution), resample)



def png_bytes(image: Image.Image | np.ndarray) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    # compress_level fixed so the same pixels always give the same bytes
    image.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()



# what Pillow raises for a file it cannot decode (UnidentifiedImageError is an OSError)
IMAGE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)


def load_image(path: str | os.PathLike, mode: str = "RGB") -> Image.Image:
    """Open an image fully (so a truncated file fails here, with its name, not later)."""
    try:
        image = Image.open(path)
        try:
            image.load()
        except BaseException:
            image.close()
            raise
    except FileNotFoundError as error:
        raise DDBError(path, "image listed in the manifest does not exist",
                       "check the dataset root, or regenerate the manifest") from error
    except PermissionError as error:
        raise DDBError(path, "image cannot be read: permission denied",
                       "make it readable for your user (ask its owner: chmod a+r), or remove it from the dataset "
                       "and rerun prepare_dataset") from error
    except Image.DecompressionBombError as error:
        raise DDBError(path, f"image too large to decode safely ({error})",
                       "replace it with a smaller copy, or remove it from the dataset and rerun "
                       "prepare_dataset") from error
    except IMAGE_ERRORS as error:
        raise DDBError(path, f"corrupt or truncated image ({error})",
                       "replace the file, or remove it from the dataset and rerun prepare_dataset") from error
    with image:
        return image.convert(mode)
