"""Every internal link and image of the built course site points at something that exists.

    .venv/bin/python scripts/docs_links.py build/site

Sphinx (run with -W -n) already refuses a Markdown link to a missing page or heading and an image file it
cannot read; this reads the HTML it wrote, so that what escapes it (a raw ``<a href>`` or ``<img src>`` in a
page, a theme link, an anchor in another page) is checked too. A link is internal when it has no scheme
(``https:``, ``mailto:``...); its file must exist in the site and its ``#anchor``, if any, must be an id in
that file. External links are not followed (the build has no network beyond the package registries).
Exit code 0 when everything resolves, 1 with one line per broken link otherwise.
"""

from __future__ import annotations

import argparse
import sys
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

LINKING = {("a", "href"), ("img", "src"), ("link", "href"), ("script", "src"), ("source", "src")}


class PageLinks(HTMLParser):
    """The ids a page defines and the (tag, url) pairs it links to."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("id", "name") and value:
                self.ids.add(value)
            if (tag, name) in LINKING and value:
                self.links.append((tag, value))


@cache
def read(page: Path) -> PageLinks:
    parsed = PageLinks()
    parsed.feed(page.read_text(errors="replace"))
    return parsed


def broken_links(site: Path) -> list[str]:
    """One line per internal link of ``site`` whose file or anchor does not exist."""
    problems = []
    site = site.resolve()
    for page in sorted(site.rglob("*.html")):
        for tag, url in read(page).links:
            parts = urlsplit(url)
            if parts.scheme or parts.netloc:
                continue  # external: not followed
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            where = f"{page.relative_to(site)}: <{tag}> {url}"
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                problems.append(f"{where}: no such file")
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in read(target).ids:
                problems.append(f"{where}: no id {parts.fragment!r} in {target.relative_to(site)}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("site", type=Path, help="the built site (make docs writes build/site)")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").exists():
        print(f"{args.site} holds no built site (no index.html): run `make docs` first", file=sys.stderr)
        return 2
    problems = broken_links(args.site)
    pages = len(list(args.site.rglob("*.html")))
    for line in problems:
        print(line)
    print(f"docs links: {pages} pages, {len(problems)} broken internal links")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
