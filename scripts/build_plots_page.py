"""Build .dvc/plots/offline.html, DVC's plots page with Vega, Vega-Lite and vega-embed inlined.

DVC's own page loads them from a CDN: without a network its charts stay blank."""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ROOT / "plots-page"
PAGE = ROOT / ".dvc" / "plots" / "offline.html"

# In load order: vega-lite needs vega, vega-embed needs both. The third item is the file whose
# license covers the build: the vega package ships none of its own, but its build is its
# sub-packages (vega-view, vega-parser, …), which all carry the same BSD-3-Clause text.
LIBRARIES = [
    ("vega", "build/vega.min.js", "../vega-view/LICENSE"),
    ("vega-lite", "build/vega-lite.min.js", "LICENSE"),
    ("vega-embed", "build/vega-embed.min.js", "LICENSE"),
]

# DVC's default page (dvc_render.html.PAGE_HTML) without `{scripts}`, the placeholder DVC fills
# with its CDN <script> tags. It replaces each `{name}` below as plain text, anywhere in the page.
TEMPLATE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>DVC Plot</title>
    <!-- Built by scripts/build_plots_page.py from npm: {versions}. No network needed. -->
{libraries}
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""
PLACEHOLDERS = ("{scripts}", "{plot_divs}", "{refresh_tag}")


class BuildError(Exception):
    pass


def install(workdir: Path) -> Path:
    """`npm ci` in `workdir`: the lockfile's packages, checked by their hashes, no scripts run.

    Outside the project, so that DVC never walks a node_modules tree."""
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(PACKAGES / name, workdir / name)
    result = subprocess.run(
        ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
        cwd=workdir, capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise BuildError(f"npm ci failed:\n{result.stderr.strip()}")
    return workdir / "node_modules"


def inline(node_modules: Path, name: str, build: str, license_file: str) -> tuple[str, str]:
    """(name@version, a <script> element with the library's license notice and code)."""
    package = node_modules / name
    pinned = json.loads((PACKAGES / "package.json").read_text())["dependencies"][name]
    version = json.loads((package / "package.json").read_text())["version"]
    if version != pinned:
        raise BuildError(f"{name}: installed {version}, package.json pins {pinned}")
    code = (package / build).read_text(encoding="utf-8")
    notice = (package / license_file).read_text(encoding="utf-8").strip()
    # Inlined into a <script>, "</script" would end the element early; inside the /*! */ notice,
    # "*/" would end the comment; a DVC placeholder would be replaced by DVC's own content.
    checks = ((code, ("</script",)), (notice, ("*/",)), (code + notice, PLACEHOLDERS))
    for text, forbidden in checks:
        found = [f for f in forbidden if f in text.lower()]
        if found:
            raise BuildError(f"{name}@{version}: contains {found[0]!r}, cannot be inlined safely")
    header = f"/*! {name} {version} (npm), {build}\n{notice}\n*/"
    return f"{name}@{version}", f"    <script>\n{header}\n{code.rstrip()}\n    </script>"


def build() -> str:
    with tempfile.TemporaryDirectory() as workdir:
        node_modules = install(Path(workdir))
        inlined = (inline(node_modules, *library) for library in LIBRARIES)
        versions, scripts = zip(*inlined, strict=True)
    return (TEMPLATE.replace("{versions}", ", ".join(versions))
            .replace("{libraries}", "\n".join(scripts)))


def main() -> None:
    try:
        page = build()
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    PAGE.write_text(page, encoding="utf-8")
    print(f"{PAGE.relative_to(ROOT)}: {len(page.encode()):,} bytes")


if __name__ == "__main__":
    main()
