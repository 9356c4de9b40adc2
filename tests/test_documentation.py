"""The Markdown documentation holds together: its links lead somewhere, and the
figures it states are the code's."""

import re

from odoo.tests import BaseCase, tagged

from ..services import delivery_worker
from .common import ADDON_ROOT, MARKDOWN_FILES, markdown_headings

# A Markdown link, [text](target), and a target that leaves the repository.
LINK = re.compile(r"\]\(([^)\s]+)\)")
EXTERNAL = re.compile(r"[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def anchor(title):
    """GitHub's anchor of a heading: lower case, punctuation dropped, blanks as ``-``."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


@tagged("post_install", "-at_install")
class TestDocumentationLinks(BaseCase):
    def test_every_relative_link_leads_to_a_file_and_heading(self):
        self.assertIn(ADDON_ROOT / "README.md", MARKDOWN_FILES)
        checked = 0
        for path in MARKDOWN_FILES:
            for target in LINK.findall(path.read_text()):
                if EXTERNAL.match(target):
                    continue
                name, _sep, fragment = target.partition("#")
                linked = (path.parent / name).resolve() if name else path
                with self.subTest(file=path.relative_to(ADDON_ROOT).as_posix(), link=target):
                    self.assertTrue(linked.exists(), "no such file")
                    if fragment and linked.suffix == ".md":
                        headings = markdown_headings(linked.read_text())
                        anchors = {anchor(title) for _index, _level, title in headings}
                        self.assertIn(fragment, anchors, "no such heading")
                checked += 1
        self.assertGreater(checked, 50, "the links were found")


@tagged("post_install", "-at_install")
class TestDocumentedFigures(BaseCase):
    def test_the_delivery_run_share_is_the_codes(self):
        """The share of what the cron's limit leaves that a delivery run uses."""
        stated = [(path.name, int(share)) for path in MARKDOWN_FILES
                  for share in re.findall(r"(\d+) % of what", path.read_text())]
        self.assertTrue(stated)
        self.assertEqual({share for _name, share in stated},
                         {round(delivery_worker.RUN_SHARE * 100)}, stated)
