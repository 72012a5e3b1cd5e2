"""`recognize_text` on a full browser screen: through the driver, and Tesseract called directly on
the same image, in the same run.

Starts a real headless Chromium (the browser driver, as the daemon runs it), shows a page of
known text (a heading and paragraphs filling the 1280x720 screen) and times:
- our path: `recognize_text` through the browser session: the page's screenshot (JPEG, quality
  100), decoding, the OCR pool's thread, Tesseract, the words and their boxes, the result model;
- direct: tesserocr on that same screen's capture (the same JPEG), with the same work done by
  hand (decode to grey, sparse-text mode, the words with their boxes, the text), on an engine
  already loaded.
Both are warmed up once (loading the language model is not timed); the reads alternate, so load
from elsewhere falls on both alike. Prints the median and the fastest of each, whether both read
the same words, and the ratios (ours / direct; the target is <= 1.2x).

    .venv/bin/python -m bench.ocr [--reads 5]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import time
from typing import Any

from PIL import Image
from tesserocr import PSM, RIL, PyTessBaseAPI, iterate_level

from drivers.browser.config import BrowserSettings, BrowserSlot
from drivers.browser.device import BrowserDevice
from drivers.browser.host import ChromiumHost
from drivers.browser.session import BrowserSession
from drivers.ocr import tessdata_dir

LINE = "The quick brown fox jumps over the lazy dog while device farms read their screens."
PAGE = (
    "data:text/html,<body style='margin:24px;font:20px sans-serif'>"
    "<h1>Order 5521: shipped</h1>"
    + "".join(f"<p>{i}. {LINE}</p>" for i in range(1, 13))
    + "</body>"
)


def direct(image: bytes, api: PyTessBaseAPI) -> list[str]:
    """What a caller of tesserocr does for the same result: decode, recognise, words, text."""
    picture = Image.open(io.BytesIO(image)).convert("L")
    api.SetImage(picture)
    api.Recognize()
    words = []
    for word in iterate_level(api.GetIterator(), RIL.WORD):
        text = word.GetUTF8Text(RIL.WORD).strip()
        if text:
            words.append(text)
            word.BoundingBox(RIL.WORD)
            word.Confidence(RIL.WORD)
    api.GetUTF8Text()
    return words


async def ours(session: BrowserSession) -> dict[str, Any]:
    result: dict[str, Any] = await session.call("recognize_text", {})
    return result


async def measure(reads: int) -> tuple[list[float], list[float], bool]:
    settings = BrowserSettings()
    chromium = ChromiumHost(settings)
    await chromium.start()
    device = BrowserDevice(BrowserSlot(name="bench"), chromium, settings)
    await device.start()
    session = await device.open_session("bench-ocr")
    assert isinstance(session, BrowserSession)
    try:
        await session.call("browse", {"url": PAGE})
        image = await session.page().screenshot(type="jpeg", quality=100)
        api = PyTessBaseAPI(path=f"{tessdata_dir()}/", lang="eng", psm=PSM.SPARSE_TEXT)
        first = await ours(session)
        same = [b["text"] for b in first["blocks"]] == direct(image, api)
        ours_s, direct_s = [], []
        for _ in range(reads):
            start = time.perf_counter()
            await ours(session)
            ours_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            await asyncio.to_thread(direct, image, api)
            direct_s.append(time.perf_counter() - start)
        api.End()
        return ours_s, direct_s, same
    finally:
        await session.close()
        await device.stop()
        await chromium.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=5, help="timed reads of each kind")
    args = parser.parse_args()
    ours_s, direct_s, same = asyncio.run(measure(args.reads))
    ours_ms, direct_ms = statistics.median(ours_s) * 1000, statistics.median(direct_s) * 1000
    ours_min, direct_min = min(ours_s) * 1000, min(direct_s) * 1000
    print(f"full-screen read (1280x720), {args.reads} reads each, median (min):")
    print(f"  recognize_text through the browser driver: {ours_ms:7.1f} ms ({ours_min:.1f})")
    print(f"  tesserocr called directly, same image:    {direct_ms:7.1f} ms ({direct_min:.1f})")
    print(f"  same words read: {same}")
    print(
        f"  ratio ours / direct: {ours_ms / direct_ms:.2f}x median, "
        f"{ours_min / direct_min:.2f}x min (target <= 1.2x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
