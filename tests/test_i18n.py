"""The translation template is current: i18n/bjet_api_sync.pot is what Odoo's
exporter writes from the code now (`make pot` writes it)."""

import difflib
import io
import re

from odoo.tests import TransactionCase, tagged
from odoo.tools import file_open
from odoo.tools.translate import trans_export

MODULE = "bjet_api_sync"
POT_PATH = f"i18n/{MODULE}.pot"
# The header lines that hold the export's time, different on every export.
EXPORT_DATES = re.compile(r'^"(POT-Creation-Date|PO-Revision-Date): .*\\n"$', re.M)
DIFF_LINES = 40


def without_dates(text):
    return EXPORT_DATES.sub("", text)


# post_install: the exporter reads only installed modules' code, and the module is
# still being installed during at_install tests.
@tagged("post_install", "-at_install")
class TestTranslationTemplate(TransactionCase):
    def test_pot_file_is_current(self):
        buffer = io.BytesIO()
        trans_export(None, [MODULE], buffer, "po", self.env.cr)
        exported = without_dates(buffer.getvalue().decode())
        self.assertIn('msgid "API Sync Manager"', exported, "the export holds the module's terms")
        try:
            with file_open(f"{MODULE}/{POT_PATH}") as committed_file:
                committed = without_dates(committed_file.read())
        except FileNotFoundError:
            committed = ""
        if committed != exported:
            diff = difflib.unified_diff(committed.splitlines(), exported.splitlines(),
                                        f"{POT_PATH} (committed)", "exported now", lineterm="")
            self.fail(f"{POT_PATH} is not current: regenerate it with `make pot` and commit "
                      "it.\n" + "\n".join(list(diff)[:DIFF_LINES]))
