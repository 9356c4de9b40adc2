from odoo import _, api, models
from odoo.exceptions import AccessError

from .bj_api_access import offer_admin_values

POSTCOMMIT_FLAG = "bj_api_sync_plans_dropped"


class BjApiPlanSourceMixin(models.AbstractModel):
    """Records that compiled plans (core/plan.py) are built from.

    Plans (``bj.api.sync.config._bj_plan_for``), the endpoint index and the index
    of native triggers are built from configurations, their lines, parameters,
    headers and HTTP methods, and cached in the registry so that a request or a
    write costs no query to read them.  Any change of these records drops them:

    * in this worker at once, and again right after the commit, since a
      concurrent request of this process may have cached the old version in
      between;
    * in every other worker on its next request, through Odoo's cache signaling
      (``registry.clear_cache()``), as for access rights and record rules.

    A configuration that runs as another user, holds a script or has a Trigger
    Action is an administrator's, with its Mapping Model chain: only Settings
    administrators create, change or delete the records it is built from
    (``_bj_check_admin_only``, before and after every change).
    """

    _name = "bj.api.plan.source.mixin"
    _description = "API Sync Plan Source"

    # Written by the machinery, never read into a plan: writing them keeps the
    # caches of the whole server.
    _plan_neutral_fields = frozenset()

    def _bj_drop_cached_plans(self):
        registry = self.env.registry
        registry.clear_cache()
        postcommit = self.env.cr.postcommit
        if not postcommit.data.get(POSTCOMMIT_FLAG):
            postcommit.data[POSTCOMMIT_FLAG] = True
            postcommit.add(registry.clear_cache)

    def _bj_configs(self):
        """The configurations whose plans these records are part of: that of
        their ``config_id`` (lines, headers, parameters)."""
        if "config_id" in self._fields:
            return self.sudo().config_id
        return self.env["bj.api.sync.config"]  # HTTP methods: administrators' (field table)

    def _bj_check_admin_only(self):
        """Refuse a user who is not a Settings administrator a change of a
        configuration that only administrators may change (see
        ``bj.api.sync.config._bj_admin_only``), or of its lines, headers,
        parameters: what runs, when, for whom and as whom.  Administrators'
        changes take the same row locks, so that the two never decide on each
        other's stale data; the addon's own code (superuser) neither."""
        if self.env.su:
            return
        locked = self._bj_configs()._bj_admin_only(lock=True)
        if locked and not self.env.is_system():
            raise AccessError(_(
                "Only Settings administrators may change configuration %(name)r, its lines, "
                "headers and parameters, or map through it: it runs as another user than "
                "you, holds a Python Script or has a Trigger Action, itself or through a "
                "configuration on its Mapping Model chain.",
                name=locked[0].name))

    @api.model
    def _get_view(self, view_id=None, view_type="form", **options):
        """Values of a field that only Settings administrators may choose are
        offered to them alone (a script type of a line)."""
        arch, view = super()._get_view(view_id, view_type, **options)
        offer_admin_values(arch, self)
        return arch, view

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        records._bj_check_admin_only()
        self._bj_drop_cached_plans()
        return records

    def write(self, vals):
        if vals:
            self._bj_check_admin_only()
        result = super().write(vals)
        if vals:
            self._bj_check_admin_only()
        if not self._plan_neutral_fields.issuperset(vals):
            self._bj_drop_cached_plans()
        return result

    def unlink(self):
        self._bj_check_admin_only()
        result = super().unlink()
        self._bj_drop_cached_plans()
        return result
