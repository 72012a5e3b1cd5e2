"""Text recognition (OCR) of a captured screen, shared by the device drivers: `recognize_text`.

Drivers capture the screen as they do for `screenshot` and hand the image bytes to `recognize`,
which reads it with Tesseract through tesserocr (a Cython binding of Tesseract's C++ API, not a
parser of the `tesseract` command's output; docs/script-api.md says why). Recognition is CPU
work of a tenth of a second to a few seconds: it runs in a small pool of threads of its own
(`WORKERS`, at most one per core, so many devices asking at once queue instead of starving the
host), never on the event loop, and it is time-bound twice: Tesseract's own deadline stops the
recognition inside the library, and the caller stops waiting a little after it.

Each worker thread keeps one initialised Tesseract per language: loading a language's model
takes about half a second, longer than reading a typical screen.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, field_validator
from tesserocr import PSM, RIL, PyTessBaseAPI, iterate_level

from drivers.images import Crop, ImageError, check_crop

TIMEOUT_S = 30.0
"""The longest one recognition may take inside Tesseract (a full, dense 1080x1920 screen takes
a few seconds on one slow core)."""
QUEUE_GRACE_S = 30.0
"""How long a request may wait for a free worker on top of TIMEOUT_S (others' screens first)."""
WORKERS = max(1, min(2, os.cpu_count() or 1))
ENGINES_PER_WORKER = 3
"""Loaded languages (or combinations) a worker keeps, tens of MB each: scripts asking for many
different ones cannot grow the daemon without bound."""
TESSDATA_DIRS = (
    Path("/usr/share/tesseract-ocr/5/tessdata"),
    Path("/usr/share/tesseract-ocr/4.00/tessdata"),
    Path("/usr/share/tessdata"),
)
"""Where Debian (and most distributions) put the language data; `TESSDATA_PREFIX` comes first."""
PAGE_SEG_MODE = PSM.SPARSE_TEXT
"""Tesseract's "sparse text" mode: find as much text as possible, in no particular layout. A
screen is labels, buttons and fields scattered over it rather than a page of paragraphs; the
default (automatic page layout) drops isolated labels more often and is slower."""
_LANG = re.compile(r"[A-Za-z0-9_]{1,64}(\+[A-Za-z0-9_]{1,64}){0,7}")


class OcrError(ValueError):
    """Text cannot be recognised as asked (no data for the language, Tesseract gave up)."""


class RecognizeRequest(BaseModel):
    """The `recognize_text` action's parameters; drivers validate a script's call with it."""

    model_config = ConfigDict(extra="forbid")

    crop: Crop | None = Field(
        default=None,
        description="(x1, y1, x2, y2) in screen pixels: read only this region.",
    )
    lang: str = Field(
        default="eng",
        description="Tesseract language(s), e.g. 'eng' or 'eng+deu'; each needs its data "
        "installed on the host (Debian: tesseract-ocr-<lang>).",
    )

    @field_validator("lang")
    @classmethod
    def _known_lang(cls, lang: str) -> str:
        names = lang.split("+")
        if not _LANG.fullmatch(lang) or len(set(names)) != len(names):
            raise ValueError("must be Tesseract language names joined by '+', e.g. 'eng'")
        missing = [name for name in names if name not in languages()]
        if missing:
            installed = ", ".join(sorted(languages())) or "none"
            raise ValueError(
                f"no Tesseract data for {', '.join(missing)} on this host (installed: "
                f"{installed}; Debian: apt-get install tesseract-ocr-<lang>)"
            )
        return lang


class Word(BaseModel):
    """One recognised word and where it is, in screen pixels (tap its middle to press it)."""

    model_config = ConfigDict(frozen=True)

    text: str
    x: int
    y: int
    width: int
    height: int
    confidence: float
    """Tesseract's confidence in the word, 0 to 100."""


class TextResult(BaseModel):
    """What `recognize_text` returns."""

    model_config = ConfigDict(frozen=True)

    text: str
    """Everything read, line by line."""
    blocks: list[Word]
    """Every word with its box and confidence, in reading order."""
    confidence: float
    """The mean confidence of the words (0 when none was read)."""
    width: int
    """Size of the region read (the crop, or the whole screen)."""
    height: int


def tessdata_dir() -> Path | None:
    """The directory of Tesseract's language data on this host, or None when it has none."""
    configured = os.environ.get("TESSDATA_PREFIX")
    candidates = (Path(configured),) if configured else TESSDATA_DIRS
    for candidate in candidates:
        if any(candidate.glob("*.traineddata")):
            return candidate
    return None


@cache
def languages() -> frozenset[str]:
    """The languages Tesseract has data for on this host (read once: installs need a restart)."""
    where = tessdata_dir()
    if where is None:
        return frozenset()
    return frozenset(path.name.removesuffix(".traineddata") for path in where.glob("*.traineddata"))


class _Engines(threading.local):
    """One worker thread's Tesseract instances, by language (they are not thread-safe), the
    least recently used first."""

    def __init__(self) -> None:
        self.by_lang: OrderedDict[str, PyTessBaseAPI] = OrderedDict()


_engines = _Engines()
_pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="ocr")


def engine(lang: str) -> PyTessBaseAPI:
    """This thread's Tesseract for `lang`, initialised on first use."""
    cached = _engines.by_lang
    api = cached.get(lang)
    if api is not None:
        cached.move_to_end(lang)
        return api
    where = tessdata_dir()
    if where is None:
        raise OcrError("no Tesseract data on this host (apt-get install tesseract-ocr-eng)")
    api = PyTessBaseAPI(path=f"{where}/", lang=lang, psm=PAGE_SEG_MODE)
    cached[lang] = api
    if len(cached) > ENGINES_PER_WORKER:
        _, oldest = cached.popitem(last=False)
        oldest.End()
    return api


def decode(image: bytes, crop: Crop | None) -> tuple[Image.Image, tuple[int, int]]:
    """The grey image to read (cropped when asked) and the offset of its corner on the screen."""
    if not image:
        raise ImageError("the captured screen is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(image)) as opened:
            picture = opened.convert("L")
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageError(f"the captured screen is not a readable image: {exc}") from exc
    if crop is None:
        return picture, (0, 0)
    check_crop(crop, picture.width, picture.height)
    return picture.crop(crop), (crop[0], crop[1])


def read(picture: Image.Image, lang: str, offset: tuple[int, int] = (0, 0)) -> TextResult:
    """Recognise the text of a decoded image (blocking: Tesseract runs in this thread)."""
    api = engine(lang)
    api.SetImage(picture)
    if not api.Recognize(timeout=int(TIMEOUT_S * 1000)):
        raise OcrError(f"Tesseract did not finish within {TIMEOUT_S:g} s")
    words: list[Word] = []
    iterator: Any = api.GetIterator()
    for word in iterate_level(iterator, RIL.WORD):
        try:
            text = word.GetUTF8Text(RIL.WORD).strip()
        except RuntimeError:  # tesserocr's way of saying "no word here" (a blank image)
            continue
        box = word.BoundingBox(RIL.WORD)
        if not text or box is None:
            continue
        left, top, right, bottom = box
        words.append(
            Word(
                text=text,
                x=left + offset[0],
                y=top + offset[1],
                width=right - left,
                height=bottom - top,
                confidence=round(word.Confidence(RIL.WORD), 1),
            )
        )
    lines = (line.strip() for line in (api.GetUTF8Text() or "").splitlines())
    mean = sum(w.confidence for w in words) / len(words) if words else 0.0
    return TextResult(
        text="\n".join(line for line in lines if line),
        blocks=words,
        confidence=round(mean, 1),
        width=picture.width,
        height=picture.height,
    )


def read_bytes(image: bytes, request: RecognizeRequest) -> TextResult:
    picture, offset = decode(image, request.crop)
    return read(picture, request.lang, offset)


async def recognize(image: bytes, request: RecognizeRequest) -> dict[str, Any]:
    """The `recognize_text` result for a captured screen, read in the OCR pool, time-bound."""
    loop = asyncio.get_running_loop()
    job = loop.run_in_executor(_pool, read_bytes, image, request)
    try:
        result = await asyncio.wait_for(job, TIMEOUT_S + QUEUE_GRACE_S)
    except TimeoutError:
        # The worker stops by itself at Tesseract's own deadline; nobody waits for it.
        raise OcrError(f"text recognition did not finish within {TIMEOUT_S:g} s") from None
    return result.model_dump()
