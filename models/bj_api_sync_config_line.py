from odoo import _, api, fields, models
from odoo.exceptions import ValidationError

from ..core import field_access
from ..core.plan import (
    MODE_EVALUATE,
    MODE_EXECUTE,
    RELATIONAL_TYPES,
    SCRIPT_TYPES,
    VALUE_MAPPING,
    VALUE_PLAIN,
    VALUE_RELATIONAL_SCRIPT,
    VALUE_SCRIPT,
    line_label,
)
from ..core.script_rules import binds_name
from ..services import run_as
from ..services.scripts import RESULT_VARIABLE, compile_script
from .bj_api_access import ADMIN_GROUP, check_group, config_company_field, user_level


class BjApiSyncConfigLine(models.Model):
    _name = "bj.api.sync.config.line"
    _inherit = ["bj.api.plan.source.mixin"]
    _description = "API Configuration Line"
    _order = "config_id, sequence, id"
    _check_company_auto = True

    config_id = fields.Many2one(
        "bj.api.sync.config",
        string="Configuration",
        required=True,
        ondelete="cascade",
        index=True,
        help="Configuration this mapping belongs to.",
    )
    company_id = config_company_field()
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
        check_company=True,
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
        help="Python code run in Odoo's sandbox; see the user manual of the Script dialog.",
    )
    has_script = fields.Boolean(compute="_compute_has_script", help="Technical field.")
    can_edit_script = fields.Boolean(
        compute="_compute_can_edit_script",
        help="Technical field: whether the user may write scripts (core/field_access.py).",
    )

    @api.depends("value_type")
    def _compute_has_script(self):
        for line in self:
            line.has_script = line.value_type in SCRIPT_TYPES

    @api.depends_context("uid")
    def _compute_can_edit_script(self):
        rule = field_access.rule_of(self._name, "python_script")
        self.can_edit_script = user_level(self.env) >= rule.level

    @api.depends("field_id.field_description", "external_key")
    def _compute_display_name(self):
        for line in self:
            label = line_label(line.external_key, line.field_id.field_description)
            line.display_name = label or _("New line")

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

    @api.constrains("value_type", "python_script", "script_mode")
    def _check_script(self):
        """The Script dialog shows on save what the script would fail with on
        every call: syntax, the sandbox and the scripts' rules."""
        for line in self.filtered(lambda line: line.value_type in SCRIPT_TYPES):
            if not (line.python_script or "").strip():
                raise ValidationError(
                    _("Line %(line)s: a Python Script is required for this Value Calculation "
                      "Type.", line=line.display_name)
                )
            error = compile_script(line.python_script, line.script_mode).error
            if error:
                raise ValidationError(_("Line %(line)s: the Python Script is refused: %(error)s",
                                        line=line.display_name, error=error))

    @api.constrains("field_id", "config_id")
    def _check_field_model(self):
        for line in self:
            if line.field_id.model_id != line.config_id.model_id:
                raise ValidationError(
                    _("Field %(field)s does not belong to model %(model)s.",
                      field=line.field_id.display_name, model=line.config_id.model_id.name)
                )

    @api.constrains("field_id", "config_id")
    def _check_field_groups(self):
        """As Odoo's webhook action: a field restricted by ``groups=`` is not
        exchanged, unless the Run As User is in the group (it then reads and
        writes the field as it would in Odoo)."""
        for line in self:
            user = line.config_id.run_as_user_id
            model = self.env.get(line.config_id.model_name)
            field = model._fields.get(line.field_id.name) if model is not None else None
            if user and field and not run_as.field_readable(user, field):
                raise ValidationError(
                    _("Line %(line)s: field %(field)s is restricted to %(groups)s, and the Run "
                      "As User %(login)s is not in it.", line=line.display_name,
                      field=line.field_id.display_name,
                      groups=run_as.group_names(self.env, field.groups), login=user.login)
                )

    # -- the Script dialog --------------------------------------------------

    @api.model
    def check_python_script(self, python_script, script_mode):
        """What the Script dialog shows before it keeps a script: ``error``, the
        error that compiling it gives (the dialog keeps nothing then), and
        ``warning``, a mistake the script can be kept with (the dialog asks
        again).  Lines in the form may not be saved yet, so the dialog checks
        the text, not a record.  Only those who may write a script ask:
        compiling costs the server time."""
        check_group(self.env, ADMIN_GROUP)
        script = compile_script(python_script, script_mode)
        warning = False
        if (not script.error and script_mode == MODE_EVALUATE and not script.is_expression
                and not binds_name(python_script, RESULT_VARIABLE)):
            warning = _(
                "Evaluate assigns the value of the expression, or of the variable "
                "'%(result)s' set by statements: these statements never set '%(result)s', so "
                "the field would get no value. End them with %(result)s = …, or choose "
                "Execute. Save again to keep the script as it is.",
                result=RESULT_VARIABLE)
        return {"error": script.error or False, "warning": warning}
