from lxml import etree

from odoo.tests import HttpCase, new_test_user, tagged

from .common import BjApiSyncCase, BjApiSyncTestMixin

APP = "bjet_api_sync.menu_api_sync_app"
# What the app holds: a new entry fails TestAppMenu until it is decided here.
APP_ENTRIES = {
    "bjet_api_sync.menu_api_sync_app_config": "bjet_api_sync.action_bj_api_sync_config",
    "bjet_api_sync.menu_api_sync_app_job": "bjet_api_sync.action_bj_api_sync_job",
    "bjet_api_sync.menu_api_sync_app_log": "bjet_api_sync.action_bj_api_log",
}
# The original's path: Settings → Technical → BJET API.
TECHNICAL_ENTRIES = {
    "bjet_api_sync.menu_bj_api_sync_config": "bjet_api_sync.action_bj_api_sync_config",
    "bjet_api_sync.menu_bj_api_sync_job": "bjet_api_sync.action_bj_api_sync_job",
    "bjet_api_sync.menu_bj_api_log": "bjet_api_sync.action_bj_api_log",
}


def visible_entries(env, root_xmlid):
    """{menu xmlid: action xmlid} of the entries under ``root_xmlid`` that the
    web client shows to ``env.user``; None when it does not show that menu."""
    menus = env["ir.ui.menu"].load_web_menus(False)
    root = env.ref(root_xmlid)
    if root.id not in menus:
        return None
    entries, todo = {}, list(menus[root.id]["children"])
    while todo:
        menu = menus[todo.pop()]
        todo += menu["children"]
        if menu["actionID"]:
            action = env["ir.actions.act_window"].sudo().browse(menu["actionID"])
            entries[menu["xmlid"]] = action.get_external_id()[action.id]
    return entries


@tagged("post_install", "-at_install")
class TestAppMenu(BjApiSyncCase):
    """The API Sync app: for the addon's own groups, who need not be Settings
    administrators, with the screens each of them may open."""

    def test_the_app_is_shown_to_users_and_managers(self):
        app = self.env.ref(APP)
        self.assertEqual(app.name, "API Sync")
        self.assertFalse(app.parent_id)
        self.assertEqual(app.web_icon, "bjet_api_sync,static/description/icon.png")
        self.assertTrue(app.web_icon_data, "the addon's icon is stored with the menu")
        for user in (self.sync_user, self.sync_manager):
            self.assertFalse(user.has_group("base.group_system"))
            menus = self.env["ir.ui.menu"].with_user(user).load_web_menus(False)
            self.assertIn(app.id, menus["root"]["children"], user.login)
            self.assertEqual(visible_entries(self.env(user=user), APP), APP_ENTRIES, user.login)

    def test_the_app_is_hidden_from_other_users(self):
        employee = new_test_user(self.env, login="bj_menu_employee", groups="base.group_user")
        self.assertIsNone(visible_entries(self.env(user=employee), APP))

    def test_every_entry_opens_for_a_plain_user(self):
        """Each action's views load and its records read as an API Sync User: no
        entry of the app fails for the lowest group that sees it."""
        env = self.env(user=self.sync_user)
        for menu, action_xmlid in visible_entries(env, APP).items():
            action = self.env.ref(action_xmlid)
            model = env[action.res_model]
            self.assertTrue(model.has_access("read"), menu)
            modes = action.view_mode.split(",")
            views = model.get_views([(False, mode) for mode in [*modes, "search"]])["views"]
            self.assertEqual(set(views), {*modes, "search"}, menu)
            # The list's own fields, as the web client asks for them.
            arch = etree.fromstring(views["list"]["arch"])
            names = {node.get("name") for node in arch.iter("field")}
            model.web_search_read([], dict.fromkeys(names, {}), limit=1)

    def test_the_original_path_stays_for_administrators(self):
        """Settings → Technical → BJET API, in developer mode as Technical is."""
        admin = new_test_user(self.env, login="bj_menu_admin", groups="base.group_system")
        technical = self.env.ref("bjet_api_sync.menu_bjet_api_root")
        self.assertEqual(technical.parent_id, self.env.ref("base.menu_custom"))
        for menu, action in TECHNICAL_ENTRIES.items():
            self.assertEqual(self.env.ref(menu).action, self.env.ref(action))
        path = technical | technical.parent_id | technical.parent_id.parent_id | technical.child_id
        for user, shown in ((admin, True), (self.sync_manager, False), (self.sync_user, False)):
            # Odoo's own filter, as the web client in developer mode asks for it.
            visible = self.env["ir.ui.menu"].with_user(user)._visible_menu_ids(debug=True)
            self.assertEqual(set(path.ids) <= visible, shown, user.login)
        self.assertEqual(visible_entries(self.env(user=admin), APP), APP_ENTRIES)


@tagged("post_install", "-at_install")
class TestAppMenuTour(BjApiSyncTestMixin, HttpCase):
    """In Chromium, from the home menu to each screen of the API Sync app and a
    record's form, as users who are not Settings administrators."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_bj_fixtures()
        config = cls.make_config(name="Menu tour configuration", request_type="out",
                                 lines=[("id", "id", {"is_identifier": True})])
        cls.env["bj.api.sync.job"].create({"config_id": config.id, "event": "manual"})
        cls.env["bj.api.log"].create({"config_id": config.id, "direction": "out",
                                      "state": "success", "company_id": cls.env.company.id})

    def reach_every_screen(self, user):
        self.assertFalse(user.has_group("base.group_system"))
        self.start_tour("/odoo", "bjet_api_sync_app_menu_tour", login=user.login)

    def test_a_manager_reaches_every_screen(self):
        self.reach_every_screen(self.sync_manager)

    def test_a_user_reaches_every_screen(self):
        self.reach_every_screen(self.sync_user)
