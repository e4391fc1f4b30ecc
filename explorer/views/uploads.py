"""An uploaded picture made into Fashion-MNIST's input, refused with a reason when it is not a picture, too
large, or claims more pixels than a photo needs (a decompression bomb)."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np

from explorer.errors import ConfigError
from explorer.i18n import N_

MAX_UPLOAD_BYTES = 5 * 2**20
MAX_UPLOAD_PIXELS = 25_000_000  # what a photo needs; a small file can claim far more (a decompression bomb)
PREVIEW_PIXELS = 256            # an upload is decoded at most about this large: the input is 28x28


INVERSIONS = {"automatic": None, "swap": True, "keep": False}  # the page's choices for read_upload's `invert`


@dataclass(frozen=True)
class Upload:
    """A picture made to look like Fashion-MNIST: a light object on a dark ground, cropped to the object,
    padded square and shrunk to 28x28, as the data set's images were made."""

    preview: np.ndarray  # the picture as decoded, grayscale, at most PREVIEW_PIXELS a side
    image: np.ndarray    # the network's 28x28 input, uint8
    inverted: bool       # light and dark were swapped (a dark object drawn on a light ground)


def read_upload(data: bytes, invert: bool | None = None) -> Upload:
    """An uploaded PNG or JPEG as Fashion-MNIST's input. `invert`: swap light and dark, keep them, or
    (None) swap them when the picture's border is light. Anything else, over 5 MB, or claiming more than
    MAX_UPLOAD_PIXELS is refused with a ConfigError that says why; the picture is decoded reduced."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_UPLOAD_BYTES:
        raise ConfigError("image", "the file has {mb:.1f} MB; upload at most {most} MB", mb=len(data) / 2**20,
                          most=MAX_UPLOAD_BYTES // 2**20)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is checked below
            with Image.open(io.BytesIO(data)) as picture:
                if picture.format not in ("PNG", "JPEG"):
                    raise ConfigError("image", "upload a PNG or JPEG image, not {format}",
                                      format=picture.format or N_("this file"))
                if picture.width * picture.height > MAX_UPLOAD_PIXELS:  # checked before any pixel is decoded
                    raise ConfigError("image", "the image claims {width}x{height} pixels; upload one of at most "
                                      "{most} megapixels", width=picture.width, height=picture.height,
                                      most=MAX_UPLOAD_PIXELS // 1_000_000)
                picture.draft("L", (PREVIEW_PIXELS, PREVIEW_PIXELS))  # a JPEG decodes at 1/2, 1/4 or 1/8 scale
                gray = picture.convert("L")
                gray.thumbnail((PREVIEW_PIXELS, PREVIEW_PIXELS))
    except ConfigError:
        raise
    except Image.DecompressionBombError:  # PIL's own refusal, at open, of a claim of hundreds of megapixels
        raise ConfigError("image", "the image claims more pixels than any photo needs; upload one of at most "
                                   "{most} megapixels", most=MAX_UPLOAD_PIXELS // 1_000_000) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise ConfigError("image", "this file is not an image that can be read (upload a PNG or JPEG)") from err
    preview = np.asarray(gray, dtype=np.uint8).copy()
    return fashion_like(preview, invert)


def fashion_like(gray: np.ndarray, invert: bool | None = None) -> Upload:
    """A grayscale picture as Fashion-MNIST draws its items: light on dark (inverted when `invert`, or when
    None and the border is light), the ground at zero, cropped to the object, padded square with a pixel
    of margin, 28x28."""
    from PIL import Image

    a = gray.astype(np.float32)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    inverted = bool(np.median(border) > 127) if invert is None else invert
    if inverted:
        a, border = 255 - a, 255 - border
    ground = float(np.median(border))
    a = np.clip(a - ground, 0, None)
    rows, cols = np.nonzero(a > 0.2 * a.max()) if a.max() > 0 else ((), ())
    if len(rows):
        a = a[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    side = max(a.shape)
    square = np.zeros((side, side), dtype=np.float32)
    top, left = (side - a.shape[0]) // 2, (side - a.shape[1]) // 2
    square[top:top + a.shape[0], left:left + a.shape[1]] = a
    square *= 255 / max(float(square.max()), 1e-6)
    small = Image.fromarray(square.round().astype(np.uint8)).resize((26, 26), Image.Resampling.LANCZOS)
    image = np.zeros((28, 28), dtype=np.uint8)
    image[1:27, 1:27] = np.asarray(small)
    return Upload(gray, image, inverted)

