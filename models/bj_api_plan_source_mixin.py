from odoo import api, models

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

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        self._bj_drop_cached_plans()
        return records

    def write(self, vals):
        result = super().write(vals)
        if not self._plan_neutral_fields.issuperset(vals):
            self._bj_drop_cached_plans()
        return result

    def unlink(self):
        result = super().unlink()
        self._bj_drop_cached_plans()
        return result
