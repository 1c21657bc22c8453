"""The built course site in a real browser: lesson 5 and the results page show their plots.

    .venv/bin/python scripts/docs_check.py build/site [--out docs/images]

Opens two pages of the site that ``make docs`` built (``notebooks/05_efficiency.html`` and
``docs/results.html``) from disk in headless Chromium, driven by selenium, started the way
``scripts/browser_check.py`` starts it (Debian's ``chromium`` and ``chromium-driver``; no network). On each
page it checks that

* every image of the site loaded (a missing or unreadable file has no natural width; external images, such
  as the Colab badge, are not fetched: the check runs offline), and
* the page shows plots: lesson 5 at least one plot among its cells' outputs (the stored run's outputs,
  docs/lesson_outputs/), the results page at least one of the stored results' figures;

then scrolls the first plot into view and saves a screenshot (``site_lesson5.png``, ``site_results.png``)
in ``--out``. Exit code 0 when all checks pass, 1 when one fails, 2 when the site, the browser or its
driver is missing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_check import BROWSERS, DRIVERS, browser, find  # noqa: E402  (the one way this project starts Chromium)

# page of the site -> (screenshot name, CSS selector of the plots it must show)
PAGES = {
    "notebooks/05_efficiency.html": ("site_lesson5.png", ".cell_output img"),
    "docs/results.html": ("site_results.png", "article img"),
}

# Every <img> of the site on the page (not http(s)) with whether it loaded (naturalWidth > 0 once complete).
IMAGES_JS = """return Array.from(document.images).filter(i => !/^https?:/.test(i.getAttribute('src')))
                   .map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]);"""


def check_page(page, site: Path, name: str, screenshot: Path, plots_css: str) -> dict[str, bool]:
    """Open one page of the site; the checks' results; the screenshot written."""
    from selenium.webdriver.common.by import By

    page.get((site / name).resolve().as_uri())
    deadline = time.time() + 30
    while time.time() < deadline and not page.execute_script("return document.readyState === 'complete';"):
        time.sleep(0.2)
    images = page.execute_script(IMAGES_JS)
    broken = [src for src, loaded in images if not loaded]
    plots = [p for p in page.find_elements(By.CSS_SELECTOR, plots_css)
             if page.execute_script("return arguments[0].naturalWidth;", p) > 0]
    if plots:
        # instant: the theme scrolls smoothly, and a screenshot taken mid-scroll shows the wrong place
        page.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});", plots[0])
        time.sleep(0.5)
    page.save_screenshot(str(screenshot))
    for src in broken:
        print(f"  {name}: image did not load: {src}")
    return {f"{name}: every image loaded ({len(images)})": not broken,
            f"{name}: shows plots ({len(plots)} found by '{plots_css}')": bool(plots)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="the built site (make docs writes build/site)")
    parser.add_argument("--out", type=Path, default=Path("docs/images"), help="folder for the screenshots")
    args = parser.parse_args(argv)
    missing = [name for name in PAGES if not (args.site / name).exists()]
    if missing:
        print(f"docs_check: {args.site} lacks {', '.join(missing)}: run `make docs` first", file=sys.stderr)
        return 2
    chromium, driver = find(BROWSERS), find(DRIVERS)
    if not chromium or not driver:
        print("docs_check: needs Chromium and its driver (Debian: apt-get install chromium chromium-driver); "
              f"found browser {chromium}, driver {driver}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    checks: dict[str, bool] = {}
    page = browser(chromium, driver)
    try:
        for name, (screenshot, plots_css) in PAGES.items():
            checks.update(check_page(page, args.site, name, args.out / screenshot, plots_css))
    finally:
        page.quit()
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    shots = ", ".join(str(args.out / shot) for shot, _ in PAGES.values())
    print(f"docs check: {'passed' if all(checks.values()) else 'FAILED'}; screenshots {shots}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
