"""The plots page in a real browser: headless Chromium, with the network taken away, opens the page
`dvc plots show` and `dvc plots diff` write, and every Vega plot on it must draw from the inlined
libraries of .dvc/plots/offline.html, the page requesting nothing beyond its own files.

Needs Debian's `chromium` (`apt-get install chromium`; `.ci/run` installs it). Without it the tests
skip, except in CI (CI=true), where they fail. Each test keeps its screenshot in its tmp_path
(the path is printed: `pytest -rA` or `-s` shows it).
"""

import csv
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from PIL import Image

from scripts.toolkit import copy_project, dvc, git

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

# The net log's initiator of a request the browser makes for itself rather than for a page.
BROWSER_ITSELF = "not an origin"

# What `dvc plots show` writes for each Vega plot: an element with an id, and a script embedding
# the plot's spec into it with vega-embed.
VEGA_PLOT = re.compile(r"""vegaEmbed\(\s*['"]#([^'"]+)['"]""")

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


def chromium() -> str:
    found = shutil.which("chromium")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is missing: .ci/run installs it (apt-get install chromium)")
    pytest.skip("chromium is not installed: `apt-get install chromium` (Debian) to run the browser tests")


def page_requests(net_log: Path) -> list[str]:
    """The URLs of every network request made for a page (not by the browser for itself)."""
    log = json.loads(net_log.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [event["params"]["url"] for event in log["events"]
            if event["type"] == start_job and "url" in event.get("params", {})
            and event["params"].get("initiator") != BROWSER_ITSELF]


def open_offline(page: Path, screenshot: Path) -> tuple[set[str], list[str]]:
    """Open `page` in headless Chromium without a network and screenshot it:
    (the ids of the drawn Vega plots, the URLs the page requested from the network)."""
    work = screenshot.with_suffix("")
    profile, net_log = work / "profile", work / "net-log.json"
    profile.mkdir(parents=True)
    result = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--log-net-log={net_log}",
         f"--screenshot={screenshot}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, f"chromium failed:\n{result.stderr[-3000:]}"
    assert screenshot.stat().st_size > 0
    print(f"screenshot of {page}: {screenshot}")
    parser = DrawnPlots()
    parser.feed(result.stdout)
    return parser.drawn, page_requests(net_log)


def vega_plots(page: Path) -> list[str]:
    """The element ids of the Vega plots dvc wrote into `page`."""
    return VEGA_PLOT.findall(page.read_text(encoding="utf-8"))


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif"}
ROWS = 10


def plot_columns(dvc_yaml: Path) -> dict[str, list[str]]:
    """{file: the fields its plots read} for every file the `plots:` section of `dvc_yaml` names."""
    columns: dict[str, list[str]] = {}
    for entry in yaml.safe_load(dvc_yaml.read_text())["plots"]:
        plot_id, props = (entry, None) if isinstance(entry, str) else next(iter(entry.items()))
        props, x = props or {}, (props or {}).get("x")
        # y maps files to fields, or names the fields of the file that is the plot's id.
        y = props.get("y") if isinstance(props.get("y"), dict) else {plot_id: props.get("y")}
        for file, fields in y.items():
            fields = [] if fields is None else [fields] if isinstance(fields, str) else list(fields)
            x_field = x.get(file) if isinstance(x, dict) else x
            file_columns = columns.setdefault(file, [])
            file_columns += [f for f in [x_field, *fields] if f and f not in file_columns]
    return columns


def write_plot_files(root: Path, rows: int) -> None:
    """Data for every plot dvc.yaml declares, whatever they are: a small gray image for each image,
    `rows` rows of small integers for each table (numbers draw on any Vega axis), so the test
    needs no pipeline run."""
    for file, fields in plot_columns(root / "dvc.yaml").items():
        path = root / file
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix in IMAGE_SUFFIXES:
            Image.linear_gradient("L").resize((64, 64)).save(path)
            continue
        fields = fields or ["value"]
        table = [{f: (i * (j + 1)) % ROWS for j, f in enumerate(fields)} for i in range(rows)]
        if path.suffix == ".json":
            path.write_text(json.dumps(table))
        else:
            with path.open("w", newline="") as out:
                writer = csv.DictWriter(out, fields, delimiter="\t" if path.suffix == ".tsv" else ",")
                writer.writeheader()
                writer.writerows(table)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project with data for each plot: commit `base`, then a commit whose tables have
    a row fewer, so `dvc plots diff` has two revisions to draw."""
    root = copy_project(tmp_path_factory.mktemp("plots-page") / "project")
    for rows, message in ((ROWS, "plots"), (ROWS - 1, "a row fewer")):
        write_plot_files(root, rows)
        # -f: the plot files may be outputs that DVC would otherwise keep out of Git.
        git(root, "add", "-f", *plot_columns(root / "dvc.yaml"))
        git(root, "commit", "-qm", message)
        if rows == ROWS:
            git(root, "branch", "base")
    return root


def test_dvc_plots_show_draws_every_plot_offline(project: Path, tmp_path: Path) -> None:
    dvc(project, "plots", "show", "--out", str(tmp_path / "show"))
    page = tmp_path / "show" / "index.html"
    plots = vega_plots(page)
    assert plots, "dvc wrote no Vega plot into the page"

    drawn, requests = open_offline(page, tmp_path / "show.png")

    assert requests == [], f"the page asked the network for {requests}"
    assert drawn.issuperset(plots), f"not drawn offline: {sorted(set(plots) - drawn)}"


def test_dvc_plots_diff_draws_both_revisions_offline(project: Path, tmp_path: Path) -> None:
    dvc(project, "plots", "diff", "base", "HEAD", "--out", str(tmp_path / "diff"))
    page = tmp_path / "diff" / "index.html"
    plots = vega_plots(page)
    assert plots, "dvc wrote no Vega plot into the page"
    # The diff's Vega plots overlay the revisions: the data of both must be in the page.
    content = page.read_text(encoding="utf-8")
    assert '"rev": "base"' in content and '"rev": "HEAD"' in content

    drawn, requests = open_offline(page, tmp_path / "diff.png")

    assert requests == [], f"the page asked the network for {requests}"
    assert drawn.issuperset(plots), f"not drawn offline: {sorted(set(plots) - drawn)}"


def test_dvc_default_page_draws_nothing_offline(project: Path, tmp_path: Path) -> None:
    """The issue, reproduced: with DVC's own CDN script tags (`{scripts}`) the same check sees the
    page ask the network for its libraries and draw none of its plots."""
    template = tmp_path / "cdn.html"
    template.write_text("<!DOCTYPE html><html><head>{scripts}</head><body>{plot_divs}</body></html>")
    dvc(project, "plots", "show", "--html-template", str(template), "--out", str(tmp_path / "cdn"))
    page = tmp_path / "cdn" / "index.html"
    plots = vega_plots(page)

    drawn, requests = open_offline(page, tmp_path / "cdn.png")

    assert plots and not drawn.intersection(plots)
    assert requests and all(url.startswith("https://cdn.jsdelivr.net/") for url in requests), requests
