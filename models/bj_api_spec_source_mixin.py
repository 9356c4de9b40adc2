from odoo import api, models

POSTCOMMIT_FLAG = "bj_api_sync_specs_dropped"


class BjApiSpecSourceMixin(models.AbstractModel):
    """Records that the cached specs are built from.

    Inbound specs (``_inbound_spec``) and outbound trigger specs
    (``_bj_trigger_specs``) are built from configurations, their lines and
    parameters, and cached in the registry so that a request or a write costs no
    query to read them.  Any change of these records drops the cached specs:

    * in this worker at once, and again right after the commit, since a
      concurrent request of this process may have cached the old version in
      between;
    * in every other worker on its next request, through Odoo's cache signaling
      (``registry.clear_cache()``), as for access rights and record rules.
    """

    _name = "bj.api.spec.source.mixin"
    _description = "API Sync Cached Spec Source"

    # Written by the machinery, never read into a spec: writing them keeps the
    # caches of the whole server.
    _spec_neutral_fields = frozenset()

    def _drop_cached_specs(self):
        registry = self.env.registry
        registry.clear_cache()
        postcommit = self.env.cr.postcommit
        if not postcommit.data.get(POSTCOMMIT_FLAG):
            postcommit.data[POSTCOMMIT_FLAG] = True
            postcommit.add(registry.clear_cache)

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        self._drop_cached_specs()
        return records

    def write(self, vals):
        result = super().write(vals)
        if not self._spec_neutral_fields.issuperset(vals):
            self._drop_cached_specs()
        return result

    def unlink(self):
        result = super().unlink()
        self._drop_cached_specs()
        return result
