"""A local web site for the browser driver tests, served over real HTTP from a thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scripts.localsite import serve_pages

MAIN_PAGE = """<!doctype html>
<html><head><title>Main</title>
<style>
  body { margin: 0; font-family: sans-serif; height: 3000px; width: 3000px; }
  #go { position: absolute; left: 100px; top: 100px; width: 200px; height: 80px; }
  #status { position: absolute; left: 100px; top: 200px; margin: 0; }
  #name { position: absolute; left: 400px; top: 100px; width: 300px; height: 30px; }
  #pad { position: absolute; left: 100px; top: 300px; width: 400px; height: 200px; }
  #icon { position: absolute; left: 800px; top: 100px; width: 40px; height: 40px; }
  #later { position: absolute; left: 900px; top: 100px; width: 120px; height: 40px; }
  #file { position: absolute; left: 900px; top: 200px; }
</style>
<script>window.events = [];</script></head>
<body>
  <button id="go" onclick="document.getElementById('status').textContent = 'clicked'">Go</button>
  <h1 id="status">waiting</h1>
  <input id="name" placeholder="your name"
         onkeydown="events.push('key:' + event.key)">
  <div id="pad"
       onmousedown="events.push('down:' + event.clientX + ',' + event.clientY)"
       onmousemove="if (event.buttons) events.push('move')"
       onmouseup="events.push('up:' + event.clientX + ',' + event.clientY)"
       ondblclick="events.push('dblclick')">pad</div>
  <span id="icon" aria-label="settings" role="button"></span>
  <button id="later" onclick="setTimeout(() => {
      const p = document.createElement('p'); p.id = 'late'; p.textContent = 'arrived late';
      document.body.appendChild(p);
      document.getElementById('go').remove();
    }, 300)">Later</button>
  <input id="file" type="file">
  <div style="display: none"><p>hidden text</p></div>
  <a id="next" href="/second" style="position: absolute; left: 100px; top: 600px">next</a>
</body></html>
"""

SECOND_PAGE = """<!doctype html><html><head><title>Second</title></head>
<body><p id="second">second page</p></body></html>"""

# Far more elements than screen_content keeps.
HUGE_PAGE = "<!doctype html><html><body>" + "<div>x</div>" * 20_000 + "</body></html>"

TEXT_PAGE = """<!doctype html><html><body style="margin: 0; font: 40px sans-serif">
<h1 id="heading" style="position: absolute; left: 60px; top: 40px; margin: 0">Invoice 4711</h1>
<p id="total" style="position: absolute; left: 60px; top: 400px; margin: 0">Total due 93 EUR</p>
</body></html>"""

PAGES = {"/": MAIN_PAGE, "/second": SECOND_PAGE, "/huge": HUGE_PAGE, "/text": TEXT_PAGE}


@pytest.fixture(scope="session")
def site() -> Iterator[str]:
    """The base URL (ending in '/') of the test site."""
    with serve_pages(PAGES) as url:
        yield url
