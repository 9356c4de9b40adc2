from odoo import _, api, fields, models
from odoo.exceptions import AccessError, ValidationError

from ..core.plan import (
    MODE_EVALUATE,
    MODE_EXECUTE,
    RELATIONAL_TYPES,
    SCRIPT_TYPES,
    VALUE_MAPPING,
    VALUE_PLAIN,
    VALUE_RELATIONAL_SCRIPT,
    VALUE_SCRIPT,
)
from ..services.scripts import compile_script
from .bj_api_secret_mixin import MANAGER_GROUP


class BjApiSyncConfigLine(models.Model):
    _name = "bj.api.sync.config.line"
    _inherit = ["bj.api.plan.source.mixin"]
    _description = "API Configuration Line"
    _order = "config_id, sequence, id"

    config_id = fields.Many2one(
        "bj.api.sync.config",
        string="Configuration",
        required=True,
        ondelete="cascade",
        index=True,
        help="Configuration this mapping belongs to.",
    )
    sequence = fields.Integer(
        default=10, help="Lines are applied in this order; scripts see earlier lines' changes."
    )
    model_id = fields.Many2one(related="config_id.model_id", string="Model")
    field_id = fields.Many2one(
        "ir.model.fields",
        string="Field",
        required=True,
        ondelete="cascade",
        domain="[('model_id', '=', model_id)]",
        help="Odoo field of the configuration's Model exchanged by this line.",
    )
    field_type = fields.Selection(
        related="field_id.ttype", string="Field Type", help="Type of the mapped Odoo field."
    )
    value_type = fields.Selection(
        [
            (VALUE_PLAIN, "Plain"),
            (VALUE_MAPPING, "Relational with Mapping Model"),
            (VALUE_SCRIPT, "Python Script for Plain Value"),
            (VALUE_RELATIONAL_SCRIPT, "Relational with Python Script"),
        ],
        string="Value Calculation Type",
        required=True,
        default=VALUE_PLAIN,
        help="Plain: the value is copied and converted. Relational with Mapping Model: "
        "related records go through another configuration. Python Script: a script "
        "computes the value.",
    )
    external_key = fields.Char(
        string="External API Key",
        help="Key of this value in the JSON exchanged with the external API.",
    )
    mapping_config_id = fields.Many2one(
        "bj.api.sync.config",
        string="Mapping Model",
        ondelete="restrict",
        help="Configuration on the related model used to read and write the related "
        "records (Relational with Mapping Model).",
    )
    is_identifier = fields.Boolean(
        string="Is Record Identifier",
        help="This field identifies a record in URLs and upserts; exactly one line per "
        "configuration.",
    )
    script_mode = fields.Selection(
        [(MODE_EVALUATE, "Evaluate"), (MODE_EXECUTE, "Execute")],
        string="Script Evaluation Mode",
        default=MODE_EVALUATE,
        help="Evaluate: the value of the expression (or of the variable 'result') is "
        "assigned to the field. Execute: the statements run for their side effects and "
        "nothing is assigned.",
    )
    python_script = fields.Text(
        string="Python Script",
        help="Python code run in Odoo's sandbox; see the user manual of the Script dialog.",
    )
    has_script = fields.Boolean(compute="_compute_has_script", help="Technical field.")

    @api.depends("value_type")
    def _compute_has_script(self):
        for line in self:
            line.has_script = line.value_type in SCRIPT_TYPES

    @api.depends("field_id", "external_key")
    def _compute_display_name(self):
        for line in self:
            line.display_name = line.external_key or line.field_id.name or _("New line")

    # -- constraints -------------------------------------------------------

    @api.constrains("field_id", "value_type", "mapping_config_id")
    def _check_mapping_model(self):
        for line in self:
            if line.value_type != VALUE_MAPPING:
                continue
            if line.field_id.ttype not in RELATIONAL_TYPES:
                raise ValidationError(
                    _("Line %(line)s: 'Relational with Mapping Model' needs a relational field.",
                      line=line.display_name)
                )
            if not line.mapping_config_id:
                raise ValidationError(
                    _("Line %(line)s: choose the Mapping Model.", line=line.display_name)
                )
            if line.mapping_config_id.model_name != line.field_id.relation:
                raise ValidationError(
                    _(
                        "Line %(line)s: the Mapping Model must be a configuration on "
                        "%(relation)s, not on %(model)s.",
                        line=line.display_name,
                        relation=self.env["ir.model"]._get(line.field_id.relation).name,
                        model=line.mapping_config_id.model_id.name,
                    )
                )
            if line.mapping_config_id == line.config_id:
                raise ValidationError(
                    _("Line %(line)s: a configuration cannot be its own Mapping Model.",
                      line=line.display_name)
                )

    @api.constrains("is_identifier")
    def _check_record_identifier(self):
        self.config_id._check_record_identifier()

    @api.constrains("external_key", "field_id", "value_type", "script_mode")
    def _check_external_key(self):
        self.config_id._bj_check_external_keys()

    @api.constrains("value_type", "python_script")
    def _check_script(self):
        for line in self:
            if line.value_type in SCRIPT_TYPES and not (line.python_script or "").strip():
                raise ValidationError(
                    _("Line %(line)s: a Python Script is required for this Value Calculation "
                      "Type.", line=line.display_name)
                )

    @api.constrains("field_id", "config_id")
    def _check_field_model(self):
        for line in self:
            if line.field_id.model_id != line.config_id.model_id:
                raise ValidationError(
                    _("Field %(field)s does not belong to model %(model)s.",
                      field=line.field_id.display_name, model=line.config_id.model_id.name)
                )

    # -- scripts are for managers only ------------------------------------

    def _check_script_author(self, vals):
        if "python_script" in vals and not (
            self.env.su or self.env.user.has_group(MANAGER_GROUP)
        ):
            raise AccessError(_("Only API Sync Managers may write Python scripts."))

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            self._check_script_author(vals)
        return super().create(vals_list)

    def write(self, vals):
        self._check_script_author(vals)
        return super().write(vals)

    # -- the Script dialog --------------------------------------------------

    @api.model
    def check_python_script(self, python_script, script_mode):
        """What the Script dialog shows before it keeps a script: the error that
        compiling it gives, or False.  Lines in the form may not be saved yet, so
        the dialog checks the text, not a record."""
        return compile_script(python_script, script_mode).error or False
