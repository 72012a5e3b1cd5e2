"""drivers/ocr.py on images made here: what it refuses, and a blank screen read as no text."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageDraw, ImageFont
from pydantic import ValidationError

from drivers import ocr
from drivers.images import ImageError
from drivers.ocr import RecognizeRequest, TextResult, languages, recognize


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


async def test_reads_words_with_boxes_offset_by_the_crop() -> None:
    image = Image.new("L", (400, 200), 255)
    ImageDraw.Draw(image).text((20, 120), "Ready 42", fill=0, font=ImageFont.load_default(32))
    result = TextResult.model_validate(
        await recognize(png(image), RecognizeRequest(crop=(0, 100, 400, 200)))
    )
    assert result.text == "Ready 42" and (result.width, result.height) == (400, 100)
    assert [w.text for w in result.blocks] == ["Ready", "42"]
    assert all(w.y >= 100 and w.y + w.height <= 200 for w in result.blocks)


async def test_refusals_name_what_is_wrong() -> None:
    with pytest.raises(ImageError, match="the captured screen is empty"):
        await recognize(b"", RecognizeRequest())
    with pytest.raises(ImageError, match="not a readable image"):
        await recognize(b"not an image", RecognizeRequest())
    blank = png(Image.new("RGB", (50, 40), "white"))
    with pytest.raises(ImageError, match=r"crop \[0, 0, 60, 10\] is outside the 50x40 screen"):
        await recognize(blank, RecognizeRequest(crop=(0, 0, 60, 10)))
    assert (await recognize(blank, RecognizeRequest()))["blocks"] == []
    assert "eng" in languages()
    with pytest.raises(ValidationError, match="no Tesseract data for zzz"):
        RecognizeRequest(lang="eng+zzz")
    with pytest.raises(ValidationError, match="must be Tesseract language names"):
        RecognizeRequest(lang="eng; rm")
    with pytest.raises(ValidationError, match="must be Tesseract language names"):
        RecognizeRequest(lang="eng+eng")


def test_a_worker_keeps_few_loaded_languages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocr, "ENGINES_PER_WORKER", 1)
    first = ocr.engine("osd")
    assert ocr.engine("osd") is first
    ocr.engine("eng")
    assert list(ocr._engines.by_lang) == ["eng"]  # osd's was ended, not kept
