"""The plots page of `dvc plots show` and `dvc plots diff` (the shared experiments' real plots) in headless
Chromium without a network: every Vega plot draws from .dvc/plots/offline.html's inlined libraries.
Needs Debian's `chromium` (skips without it, fails in CI); each screenshot stays in its test's tmp_path."""

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from scripts.toolkit import dvc

# Headless, as root, with no profile and none of Chromium's own traffic (sign-in, updates, time).
# Every host name resolves to nothing and every other request goes to a closed port on 127.0.0.1:
# whatever the page or the browser tries, nothing leaves the machine; the net log records the tries.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-features=NetworkTimeServiceQuerying",
    "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
    # Virtual time runs as fast as the page lets it: the budget is an upper bound, not a wait.
    "--virtual-time-budget=10000", "--window-size=1280,3000",
]
VOID_ELEMENTS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
                 "track", "wbr"}


class DrawnPlots(HTMLParser):
    """The ids of the elements holding a drawn Vega view: Vega's renderers draw into a <canvas> or
    <svg> of class "marks" (vega-embed's menu icon is an <svg> too, hence the class)."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[tuple[str, str | None]] = []  # (tag, id) of the enclosing elements
        self.drawn: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in ("canvas", "svg") and "marks" in (attributes.get("class") or "").split():
            self.drawn.update(element_id for _, element_id in self.open if element_id)
        if tag not in VOID_ELEMENTS:
            self.open.append((tag, attributes.get("id")))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.open) - 1, -1, -1):
            if self.open[depth][0] == tag:
                del self.open[depth:]
                return


def open_offline(page: Path, screenshot: Path) -> tuple[list[str], set[str], list[str]]:
    """Open `page` in headless Chromium without a network and screenshot it: (the ids of the Vega
    plots dvc wrote into it, the ids of those drawn, the URLs the page requested from the network)."""
    chromium = shutil.which("chromium")
    if not chromium:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing: .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed: `apt-get install chromium` (Debian) to run the browser tests")
    profile, net_log = screenshot.with_suffix("") / "profile", screenshot.with_suffix("") / "net-log.json"
    profile.mkdir(parents=True)
    result = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--log-net-log={net_log}",
         f"--screenshot={screenshot}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, f"chromium failed:\n{result.stderr[-3000:]}"
    assert screenshot.stat().st_size > 0
    print(f"screenshot of {page}: {screenshot}")
    parser = DrawnPlots()
    parser.feed(result.stdout)
    log = json.loads(net_log.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    # A request the browser makes for itself, not for the page, has the initiator "not an origin".
    requests = [event["params"]["url"] for event in log["events"]
                if event["type"] == start_job and "url" in event.get("params", {})
                and event["params"].get("initiator") != "not an origin"]
    # What `dvc plots show` writes for each Vega plot: an element with an id, and a script embedding
    # the plot's spec into it with vega-embed.
    plots = re.findall(r"""vegaEmbed\(\s*['"]#([^'"]+)['"]""", page.read_text(encoding="utf-8"))
    return plots, parser.drawn, requests


@pytest.mark.parametrize("command", [["show"], ["diff", "base", "HEAD"]], ids=["show", "diff"])
def test_dvc_plots_draws_every_plot_offline(command, queued_experiments, tmp_path):
    dvc(queued_experiments.project, "plots", *command, "--out", str(tmp_path / "page"))
    page = tmp_path / "page" / "index.html"
    if command[0] == "diff":  # its Vega plots overlay the revisions: the data of both must be in the page
        content = page.read_text(encoding="utf-8")
        assert '"rev": "base"' in content and '"rev": "HEAD"' in content

    plots, drawn, requests = open_offline(page, tmp_path / "page.png")

    assert plots, "dvc wrote no Vega plot into the page"
    assert requests == [], f"the page asked the network for {requests}"
    assert drawn.issuperset(plots), f"not drawn offline: {sorted(set(plots) - drawn)}"


def test_dvc_default_page_draws_nothing_offline(queued_experiments, tmp_path):
    """The issue, reproduced: with DVC's own CDN script tags (`{scripts}`) the same check sees the
    page ask the network for its libraries and draw none of its plots."""
    template = tmp_path / "cdn.html"
    template.write_text("<!DOCTYPE html><html><head>{scripts}</head><body>{plot_divs}</body></html>")
    dvc(queued_experiments.project, "plots", "show", "--html-template", str(template),
        "--out", str(tmp_path / "cdn"))

    plots, drawn, requests = open_offline(tmp_path / "cdn" / "index.html", tmp_path / "cdn.png")

    assert plots and not drawn.intersection(plots)
    assert requests and all(url.startswith("https://cdn.jsdelivr.net/") for url in requests), requests
