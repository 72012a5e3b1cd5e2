"""drivers/images.py: crop, scale down to a box (never up), JPEG encoding, and its validation."""

from __future__ import annotations

import io
from base64 import b64decode

import pytest
from PIL import Image
from pydantic import ValidationError

from drivers.images import (
    ImageError,
    ScreenshotRequest,
    ScreenshotResult,
    fit_size,
    render_screenshot,
)


def png(width: int, height: int, mode: str = "RGB") -> bytes:
    image = Image.new(mode, (width, height))
    # Left half red, right half blue, so crops can be told apart by colour.
    image.paste((255, 0, 0) if mode == "RGB" else (255, 0, 0, 255), (0, 0, width // 2, height))
    image.paste((0, 0, 255) if mode == "RGB" else (0, 0, 255, 255), (width // 2, 0, width, height))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def decode(result: ScreenshotResult) -> Image.Image:
    assert result.screenshot is not None
    image = Image.open(io.BytesIO(b64decode(result.screenshot)))
    assert image.format == "JPEG"
    return image


def request(
    max_width: int, max_height: int, quality: int = 80, crop: object = None
) -> ScreenshotRequest:
    return ScreenshotRequest.model_validate(
        {"max_width": max_width, "max_height": max_height, "quality": quality, "crop": crop}
    )


@pytest.mark.parametrize(
    ("size", "box", "expected"),
    [
        ((1280, 720), (320, 240), (320, 180)),
        ((1280, 720), (1080, 1920), (1080, 608)),
        ((720, 1280), (1080, 1920), (720, 1280)),  # never scaled up
        ((1280, 720), (4000, 100), (178, 100)),
        ((1000, 10), (10, 10), (10, 1)),  # never below one pixel
        ((500, 500), (500, 500), (500, 500)),
    ],
)
def test_fit_size_keeps_aspect_ratio_inside_the_box(
    size: tuple[int, int], box: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert fit_size(*size, *box) == expected


def test_fit_size_refuses_an_empty_box() -> None:
    with pytest.raises(ImageError, match="box"):
        fit_size(100, 100, 0, 100)


def test_scales_down_to_fit_the_box() -> None:
    result = render_screenshot(png(1280, 720), request(320, 240))
    assert (result.compressed_width, result.compressed_height) == (320, 180)
    assert (result.original_width, result.original_height) == (1280, 720)
    assert decode(result).size == (320, 180)


def test_never_scales_up() -> None:
    result = render_screenshot(png(640, 360), request(1080, 1920))
    assert (result.compressed_width, result.compressed_height) == (640, 360)
    assert decode(result).size == (640, 360)


def test_crop_is_applied_before_scaling() -> None:
    # The right half only (blue, 640x720), then fitted into 320x320: 284x320.
    result = render_screenshot(png(1280, 720), request(320, 320, crop=[640, 0, 1280, 720]))
    assert (result.original_width, result.original_height) == (1280, 720)
    assert (result.compressed_width, result.compressed_height) == (284, 320)
    image = decode(result).convert("RGB")
    red, green, blue = image.getpixel((142, 160))  # type: ignore[misc]
    assert blue > 200 and red < 60 and green < 60


@pytest.mark.parametrize(
    ("crop", "problem"),
    [
        ([0, 0, 2000, 100], "outside"),
        ([-1, 0, 10, 10], "outside"),
        ([10, 10, 10, 20], "x1 < x2"),
        ([10, 30, 20, 20], "y1 < y2"),
    ],
)
def test_bad_crops_are_refused(crop: list[int], problem: str) -> None:
    with pytest.raises(ImageError, match=problem):
        render_screenshot(png(1280, 720), request(320, 240, crop=crop))


def test_quality_changes_the_size() -> None:
    noisy = Image.effect_noise((400, 300), 80).convert("RGB")
    out = io.BytesIO()
    noisy.save(out, format="PNG")
    low = render_screenshot(out.getvalue(), request(400, 300, quality=10))
    high = render_screenshot(out.getvalue(), request(400, 300, quality=95))
    assert low.screenshot is not None and high.screenshot is not None
    assert len(low.screenshot) < len(high.screenshot)


def test_transparent_png_becomes_a_jpeg() -> None:
    result = render_screenshot(png(200, 100, mode="RGBA"), request(100, 100))
    assert decode(result).size == (100, 50)


def test_unreadable_bytes_are_an_image_error() -> None:
    with pytest.raises(ImageError, match="not a readable image"):
        render_screenshot(b"not an image", request(100, 100))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"max_width": 0, "max_height": 10, "quality": 80}, "max_width"),
        ({"max_width": 10, "max_height": -5, "quality": 80}, "max_height"),
        ({"max_width": 10, "max_height": 10, "quality": 0}, "quality"),
        ({"max_width": 10, "max_height": 10, "quality": 101}, "quality"),
        ({"max_width": 10, "max_height": 10, "quality": 80, "crop": [1, 2, 3]}, "crop"),
        ({"max_width": 10, "max_height": 10}, "quality"),
        ({"max_width": 10, "max_height": 10, "quality": 80, "zoom": 2}, "zoom"),
    ],
)
def test_request_validation_names_the_field(params: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ScreenshotRequest.model_validate(params)
    assert field in str(caught.value)


def test_result_has_the_script_api_shape() -> None:
    result = render_screenshot(png(100, 50), request(50, 50)).as_result()
    assert set(result) == {
        "screenshot",
        "compressedWidth",
        "compressedHeight",
        "originalWidth",
        "originalHeight",
    }
    assert (result["compressedWidth"], result["compressedHeight"]) == (50, 25)
