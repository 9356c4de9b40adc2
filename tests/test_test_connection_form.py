"""Test Connection does nothing behind the user's back: with unsaved changes,
the form asks before it saves them (static/src/config_form/test_connection_button.js)."""

import json

from odoo.tests import HttpCase, tagged

from .common import BjApiSyncTestMixin, LocalServerMixin
from .test_ui import SINK_URL_KEY, START_URL

TOUR = "bjet_api_sync_test_connection_tour"


@tagged("post_install", "-at_install")
class TestTestConnectionForm(BjApiSyncTestMixin, LocalServerMixin, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_bj_fixtures()
        cls.config = cls.make_partner_config(
            request_type="out", name="Tried out", request_url=f"{cls.server.url}/saved",
            run_as_user_id=cls.sync_manager.id, user_id=cls.sync_manager.id)

    def test_test_connection_asks_before_it_saves(self):
        url = f"{START_URL}/{self.config.id}"
        options = {"stepDelay": 0, "startUrl": url}
        code = (f"localStorage.setItem({SINK_URL_KEY!r}, {json.dumps(self.server.url)}); "
                f"odoo.startTour({TOUR!r}, {json.dumps(options)})")
        self.start_tour(url, TOUR, login=self.sync_manager.login, code=code)
        self.env.invalidate_all()
        self.assertEqual(self.config.request_url, f"{self.server.url}/typed")
        # Only what was saved was ever tested: nothing reached /saved before.
        paths = {request.path for request in self.server.requests}
        self.assertEqual(paths, {"/typed"})
        self.assertEqual(len(self.get_logs(self.config)), 2)
