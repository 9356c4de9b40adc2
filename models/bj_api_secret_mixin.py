import logging
import os

from odoo import _, api, fields, models, tools
from odoo.exceptions import UserError

from ..core import crypto, masking

_logger = logging.getLogger("bj.api.crypto")

MANAGER_GROUP = "bjet_api_sync.group_api_sync_manager"


def secret_fields(name, string, help):
    """The pair ``(plaintext field, encrypted column)`` of secret ``name``.

    Declare it as ``x, x_encrypted = secret_fields("x", ...)`` and list ``x`` in
    ``_bj_secret_fields``; both are for API Sync Managers only, and ``x`` reads
    as empty for those who may not change its configuration.  Each secret has
    a compute and an inverse of its own: Odoo protects every field of a shared
    compute method while one of them is written, and a protected field that is
    not in the cache reads as empty, so a shared inverse would erase the others.
    """

    # Its value depends on the reader (``_bj_hidden_secrets``): cached per user.
    @api.depends_context("uid")
    def compute(records):
        records._bj_compute_secret(name)

    def inverse(records):
        records._bj_inverse_secret(name)

    plaintext = fields.Char(
        string=string,
        compute=compute,
        inverse=inverse,
        groups=MANAGER_GROUP,
        help=f"{help} Stored encrypted.",
    )
    encrypted = fields.Char(
        groups=MANAGER_GROUP, copy=False, help=f"Technical: the encrypted {string}."
    )
    return plaintext, encrypted


class UrlWithCredentials(fields.Char):
    """A URL that may hold credentials (``user:pw@``, ``?api_key=``): whoever
    may not read its record's secrets (``_bj_hidden_secrets``) reads and exports
    it masked.  ``read``, ``search_read``, ``web_read`` and ``export_data`` all
    convert through these two methods."""

    def _bj_masked(self, value, record):
        if value and record in record._bj_hidden_secrets():
            return masking.mask_url(value) or False
        return value

    def convert_to_read(self, value, record, use_display_name=True):
        return self._bj_masked(super().convert_to_read(value, record, use_display_name), record)

    def convert_to_export(self, value, record):
        return super().convert_to_export(self._bj_masked(value, record), record)


class BjApiSecretMixin(models.AbstractModel):
    """Stores secrets encrypted at rest.

    A model lists its secret fields in ``_bj_secret_fields``; for each name
    ``x`` it declares, with ``secret_fields``, a stored ``x_encrypted`` column
    and a non-stored ``x`` field computed/inverted with
    ``_bj_compute_secret``/``_bj_inverse_secret``.
    Code reads and writes ``x`` in plaintext; the database only ever holds
    ``x_encrypted``.
    """

    _name = "bj.api.secret.mixin"
    _description = "Encrypted secrets"

    _bj_secret_fields = ()

    encryption_key_in_database = fields.Boolean(
        compute="_compute_encryption_key_in_database",
        help="The encryption key is kept in a system parameter, in the same database as "
        "the secrets it protects. Set the option bjet_api_sync_encryption_key in the Odoo "
        "configuration file, or the environment variable BJET_API_SYNC_ENCRYPTION_KEY.",
    )

    # -- key management ---------------------------------------------------

    @api.model
    def _bj_key_source(self):
        """Return ``(keys_text, origin)``: origin is 'config', 'environment' or 'database'."""
        configured = tools.config.get(crypto.CONFIG_OPTION)
        if configured:
            return configured, "config"
        from_environment = os.environ.get(crypto.ENVIRONMENT_VARIABLE)
        if from_environment:
            return from_environment, "environment"
        params = self.env["ir.config_parameter"].sudo()
        stored = params.get_param(crypto.SYSTEM_PARAMETER)
        if not stored:
            stored = crypto.generate_key()
            params.set_param(crypto.SYSTEM_PARAMETER, stored)
            _logger.info(
                "Generated an encryption key for API secrets and stored it in the database; "
                "set %s in the Odoo configuration file to keep it elsewhere.",
                crypto.CONFIG_OPTION,
            )
        return stored, "database"

    @api.model
    def _bj_ensure_encryption_key(self):
        """Create the database key at install, not lazily inside a read-only request."""
        self._bj_key_source()

    @api.model
    def _bj_secret_box(self):
        keys_text, _origin = self._bj_key_source()
        try:
            return crypto.SecretBox(crypto.split_keys(keys_text))
        except ValueError as error:
            raise UserError(_("API secrets cannot be encrypted: %s", error)) from error

    def _compute_encryption_key_in_database(self):
        in_database = self._bj_key_source()[1] == "database"
        for record in self:
            record.encryption_key_in_database = in_database

    # -- secret fields ----------------------------------------------------

    def _bj_hidden_secrets(self):
        """Those of these records whose secrets the reader of ``self.env`` may
        not read: the records of configurations only Settings administrators may
        change (``admin_only``).  Their secrets open endpoints that run as
        another user, so reading them would be acting as that user."""
        return self.filtered(lambda record: any(record._bj_configs().with_env(
            self.env).mapped("admin_only")))

    def _bj_compute_secret(self, name):
        column = f"{name}_encrypted"
        hidden = self._bj_hidden_secrets()
        stored_values = [record not in hidden and record.sudo()[column] for record in self]
        box = self._bj_secret_box() if any(stored_values) else None
        for record, stored in zip(self, stored_values, strict=True):
            if not stored:
                record[name] = False
                continue
            try:
                record[name] = box.decrypt(stored)
            except crypto.SecretDecryptionError:
                _logger.error("Cannot decrypt %s of %s: wrong encryption key.", name, record)
                record[name] = False

    def _bj_inverse_secret(self, name):
        box = self._bj_secret_box()
        for record in self:
            record.sudo()[f"{name}_encrypted"] = box.encrypt(record[name] or "")

    def _bj_secret_values(self):
        """Every plaintext secret of these records, for masking logs."""
        values = []
        for record in self.sudo():
            values.extend(record[name] for name in self._bj_secret_fields if record[name])
        return values

    # -- rotation ---------------------------------------------------------

    @api.model
    def _bj_reencrypt_all(self, box):
        """Re-encrypt every stored secret of every model using this mixin."""
        count = 0
        for model_name in self.env.registry.descendants([BjApiSecretMixin._name], "_inherit"):
            model = self.env[model_name]
            if model._abstract or not model._bj_secret_fields:
                continue
            records = model.sudo().with_context(active_test=False).search([])
            for record in records:
                for name in model._bj_secret_fields:
                    column = f"{name}_encrypted"
                    if record[column]:
                        record[column] = box.reencrypt(record[column])
                        count += 1
        return count

    @api.model
    def _bj_rotate_encryption_key(self):
        """Re-encrypt all secrets under a new primary key.

        When the key lives in the database a new key is generated.  When it comes
        from the configuration file or the environment, the administrator has put
        the new key first in the list; everything is re-encrypted under it.
        """
        if not self.env.user.has_group(MANAGER_GROUP):
            raise UserError(_("Only API Sync Managers may rotate the encryption key."))
        keys_text, origin = self._bj_key_source()
        keys = crypto.split_keys(keys_text)
        if origin == "database":
            keys = [crypto.generate_key(), *keys]
        try:
            box = crypto.SecretBox(keys)
        except ValueError as error:
            raise UserError(_("Cannot rotate the encryption key: %s", error)) from error
        count = self._bj_reencrypt_all(box)
        if origin == "database":
            self.env["ir.config_parameter"].sudo().set_param(crypto.SYSTEM_PARAMETER, keys[0])
        _logger.info("Re-encrypted %s API secrets under a new key (%s).", count, origin)
        return count
