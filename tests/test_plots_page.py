"""Every plot of `dvc plots show` and `dvc plots diff` draws in headless Chromium, offline."""

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from scripts.toolkit import dvc

# Headless, as root, none of Chromium's own traffic; host names resolve to nothing, other requests
# go to a closed port on 127.0.0.1: nothing leaves the machine, and the net log records every try.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-sync", "--disable-background-networking", "--disable-component-update",
    "--disable-extensions",
    "--disable-features=NetworkTimeServiceQuerying", "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",
    # Virtual time runs as fast as the page lets it: the budget is an upper bound, not a wait.
    "--virtual-time-budget=10000", "--window-size=1280,3000",
]


class DrawnPlots(HTMLParser):
    """The ids of the elements holding a drawn Vega view: a <canvas> or <svg> of class "marks".

    vega-embed's menu icon is an <svg> too, hence the class."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[tuple[str, str | None]] = []  # (tag, id) of the enclosing elements
        self.drawn: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in ("canvas", "svg") and "marks" in (attributes.get("class") or "").split():
            self.drawn.update(element_id for _, element_id in self.open if element_id)
        self.open.append((tag, attributes.get("id")))  # a void element stays until its parent ends

    def handle_endtag(self, tag: str) -> None:
        tags = [name for name, _ in self.open]
        if tag in tags:  # closes the innermost open element of its name, and any open inside it
            del self.open[len(tags) - 1 - tags[::-1].index(tag):]


@pytest.mark.parametrize(("command", "cdn"),
                         [(["show"], False), (["diff", "base", "HEAD"], False), (["show"], True)],
                         ids=["show", "diff", "dvc-default-page"])
def test_dvc_plots_page_draws_every_plot_offline(command, cdn, queued_experiments, tmp_path):
    """Every plot draws offline; `cdn`: DVC's own page (`{scripts}`) asks a CDN, draws nothing."""
    if not (chromium := shutil.which("chromium")):
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing: .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed: `apt-get install chromium` (Debian) to run the "
                    "browser tests")
    template = tmp_path / "cdn.html"
    template.write_text("<!DOCTYPE html><html><head>{scripts}</head>"
                        "<body>{plot_divs}</body></html>")
    page_template = ["--html-template", str(template)] if cdn else []
    dvc(queued_experiments.project, "plots", *command, *page_template,
        "--out", str(tmp_path / "page"))
    page = (tmp_path / "page" / "index.html").read_text(encoding="utf-8")
    # dvc writes each Vega plot as an element with an id and a script embedding it with vega-embed.
    plots = re.findall(r"""vegaEmbed\(\s*['"]#([^'"]+)['"]""", page)
    assert plots, "dvc wrote no Vega plot into the page"
    if "diff" in command:  # its Vega plots overlay the revisions: both revisions' data are in it
        assert '"rev": "base"' in page and '"rev": "HEAD"' in page

    screenshot, net_log = tmp_path / "page.png", tmp_path / "net-log.json"
    result = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                             f"--log-net-log={net_log}", f"--screenshot={screenshot}", "--dump-dom",
                             (tmp_path / "page" / "index.html").as_uri()],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"chromium failed:\n{result.stderr[-3000:]}"
    assert screenshot.stat().st_size > 0
    print(f"screenshot of the page: {screenshot}")
    parser = DrawnPlots()
    parser.feed(result.stdout)
    log = json.loads(net_log.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    # A request the browser makes for itself, not for the page, has the initiator "not an origin".
    requests = [event["params"]["url"] for event in log["events"]
                if event["type"] == start_job and "url" in event.get("params", {})
                and event["params"].get("initiator") != "not an origin"]

    if cdn:
        assert not parser.drawn.intersection(plots)
        assert requests, requests
        assert all(url.startswith("https://cdn.jsdelivr.net/") for url in requests), requests
    else:
        assert requests == [], f"the page asked the network for {requests}"
        assert parser.drawn.issuperset(plots), \
            f"not drawn offline: {sorted(set(plots) - parser.drawn)}"
