"""Screenshot post-processing shared by the device drivers: crop, scale down to a box, encode JPEG.

Drivers capture the screen in whatever format their device gives (PNG from Chromium, JPEG or PNG
from Android) and hand the bytes to `render_screenshot`, which produces the exact result shape of
the `screenshot` action (see /work/shared/spec/actions.md).
"""

from __future__ import annotations

import io
from base64 import b64encode

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

Crop = tuple[int, int, int, int]


class ImageError(ValueError):
    """The screenshot cannot be produced as asked (a crop outside the image, unreadable bytes)."""


class ScreenshotRequest(BaseModel):
    """The `screenshot` action's parameters; drivers use this model to validate a script's call."""

    model_config = ConfigDict(extra="forbid")

    max_width: int = Field(gt=0, description="Width of the box the image must fit in, in pixels.")
    max_height: int = Field(gt=0, description="Height of the box the image must fit in, in pixels.")
    quality: int = Field(ge=1, le=100, description="JPEG quality, 1 (smallest) to 100 (best).")
    crop: Crop | None = Field(
        default=None,
        description="(x1, y1, x2, y2) in original screen pixels, applied before scaling.",
    )


class ScreenshotResult(BaseModel):
    """The `screenshot` action's result; `as_result()` gives the camelCase dict scripts receive."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    screenshot: str | None
    """Base64 JPEG, or None when the device could not capture its screen."""
    compressed_width: int
    compressed_height: int
    original_width: int
    """Size of the whole captured screen, before cropping and scaling."""
    original_height: int

    def as_result(self) -> dict[str, object]:
        return self.model_dump(by_alias=True)


def fit_size(width: int, height: int, max_width: int, max_height: int) -> tuple[int, int]:
    """The largest size with the image's aspect ratio that fits the box, never above the
    image's own size."""
    if width <= 0 or height <= 0:
        raise ImageError(f"image size must be positive, got {width}x{height}")
    if max_width <= 0 or max_height <= 0:
        raise ImageError(f"the box must be positive, got {max_width}x{max_height}")
    scale = min(1.0, max_width / width, max_height / height)
    if scale == 1.0:
        return width, height
    # Rounding may overshoot the box by one pixel on the constrained side; clamp it back.
    return (
        max(1, min(max_width, round(width * scale))),
        max(1, min(max_height, round(height * scale))),
    )


def check_crop(crop: Crop, width: int, height: int) -> None:
    x1, y1, x2, y2 = crop
    if not (x1 < x2 and y1 < y2):
        raise ImageError(f"crop {list(crop)} must have x1 < x2 and y1 < y2")
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        raise ImageError(f"crop {list(crop)} is outside the {width}x{height} screen")


def render_screenshot(image: bytes, request: ScreenshotRequest) -> ScreenshotResult:
    """Crop (if asked), scale down to fit the request's box, and encode as base64 JPEG."""
    try:
        with Image.open(io.BytesIO(image)) as opened:
            picture = opened.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageError(f"the captured screen is not a readable image: {exc}") from exc
    original_width, original_height = picture.size
    if request.crop is not None:
        check_crop(request.crop, original_width, original_height)
        picture = picture.crop(request.crop)
    size = fit_size(picture.width, picture.height, request.max_width, request.max_height)
    if size != picture.size:
        picture = picture.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=request.quality)
    return ScreenshotResult(
        screenshot=b64encode(out.getvalue()).decode("ascii"),
        compressed_width=picture.width,
        compressed_height=picture.height,
        original_width=original_width,
        original_height=original_height,
    )
