import os
from unittest.mock import patch

from odoo.exceptions import UserError
from odoo.tests import BaseCase, tagged
from odoo.tools import config as odoo_config

from ..core import crypto
from .common import BjApiSyncCase, generated_secret


@tagged("post_install", "-at_install")
class TestSecretBox(BaseCase):
    def test_round_trip_and_prefix(self):
        box = crypto.SecretBox([crypto.generate_key()])
        stored = box.encrypt("s3cret-value")
        self.assertTrue(stored.startswith(crypto.CIPHERTEXT_PREFIX))
        self.assertNotIn("s3cret-value", stored)
        self.assertEqual(box.decrypt(stored), "s3cret-value")
        self.assertFalse(box.encrypt(""))
        self.assertFalse(box.decrypt(False))

    def test_wrong_key(self):
        stored = crypto.SecretBox([crypto.generate_key()]).encrypt("x" * 10)
        with self.assertRaises(crypto.SecretDecryptionError):
            crypto.SecretBox([crypto.generate_key()]).decrypt(stored)
        with self.assertRaises(crypto.SecretDecryptionError):
            crypto.SecretBox([crypto.generate_key()]).decrypt("plaintext")

    def test_old_keys_decrypt_and_reencrypt_uses_first(self):
        old, new = crypto.generate_key(), crypto.generate_key()
        stored = crypto.SecretBox([old]).encrypt("value")
        rotated = crypto.SecretBox([new, old]).reencrypt(stored)
        self.assertEqual(crypto.SecretBox([new]).decrypt(rotated), "value")

    def test_invalid_keys(self):
        with self.assertRaisesRegex(ValueError, "No encryption key"):
            crypto.SecretBox([])
        with self.assertRaisesRegex(ValueError, "#2 is not a valid Fernet key"):
            crypto.SecretBox([crypto.generate_key(), "short"])
        self.assertEqual(crypto.split_keys(" a, ,b "), ["a", "b"])


@tagged("post_install", "-at_install")
class TestSecretsAtRest(BjApiSyncCase):
    def setUp(self):
        super().setUp()
        self.password = generated_secret("pw")
        self.token = generated_secret("tok")
        self.signature = generated_secret("sig")
        self.config = self.make_config(
            authorization_type="basic_auth",
            login="api",
            password=self.password,
            bearer_token=self.token,
            signature_secret=self.signature,
        )
        self.env.flush_all()

    def table_text(self):
        self.env.cr.execute("SELECT t::text FROM bj_api_sync_config t")
        return "\n".join(row[0] for row in self.env.cr.fetchall())

    def test_no_plaintext_in_the_database(self):
        text = self.table_text()
        for secret in (self.password, self.token, self.signature):
            self.assertNotIn(secret, text)
        self.assertIn(crypto.CIPHERTEXT_PREFIX, text)
        self.env.cr.execute(
            "SELECT COALESCE(string_agg(t::text, ''), '') FROM mail_tracking_value t"
        )
        self.assertNotIn(self.password, self.env.cr.fetchone()[0])

    def test_plaintext_through_the_orm(self):
        self.config.invalidate_recordset()
        self.assertEqual(self.config.password, self.password)
        self.assertEqual(self.config.bearer_token, self.token)
        self.assertEqual(self.config.signature_secret, self.signature)
        self.assertCountEqual(
            self.config._bj_secret_values(), [self.password, self.token, self.signature]
        )
        self.config.password = False
        self.assertFalse(self.config.password_encrypted)

    def test_key_from_environment_or_config_file(self):
        key = crypto.generate_key()
        with patch.dict(os.environ, {crypto.ENVIRONMENT_VARIABLE: key}):
            self.assertEqual(self.config._bj_key_source(), (key, "environment"))
            self.config.invalidate_recordset()
            self.assertFalse(self.config.encryption_key_in_database)
        with patch.dict(odoo_config.options, {crypto.CONFIG_OPTION: key}):
            self.assertEqual(self.config._bj_key_source(), (key, "config"))

    def test_database_key_generated_once(self):
        params = self.env["ir.config_parameter"].sudo()
        key = params.get_param(crypto.SYSTEM_PARAMETER)
        self.assertTrue(key, "a key was generated when the first secret was stored")
        self.assertEqual(self.config._bj_key_source(), (key, "database"))
        self.assertTrue(self.config.encryption_key_in_database)

    def test_rotation_with_database_key(self):
        params = self.env["ir.config_parameter"].sudo()
        old_key = params.get_param(crypto.SYSTEM_PARAMETER)
        old_cipher = self.config.password_encrypted
        self.config.action_rotate_encryption_key()
        new_key = params.get_param(crypto.SYSTEM_PARAMETER)
        self.assertNotEqual(new_key, old_key)
        self.config.invalidate_recordset()
        self.assertNotEqual(self.config.password_encrypted, old_cipher)
        self.assertEqual(self.config.password, self.password)
        self.assertEqual(self.config.signature_secret, self.signature)
        with self.assertRaises(crypto.SecretDecryptionError):
            crypto.SecretBox([old_key]).decrypt(self.config.password_encrypted)

    def test_rotation_with_configured_keys(self):
        old_key = self.env["ir.config_parameter"].sudo().get_param(crypto.SYSTEM_PARAMETER)
        new_key = crypto.generate_key()
        with patch.dict(odoo_config.options, {crypto.CONFIG_OPTION: f"{new_key},{old_key}"}):
            self.config.action_rotate_encryption_key()
        with patch.dict(odoo_config.options, {crypto.CONFIG_OPTION: new_key}):
            self.config.invalidate_recordset()
            self.assertEqual(self.config.bearer_token, self.token)

    def test_only_managers_rotate(self):
        with self.assertRaises(UserError):
            self.config.with_user(self.sync_user).action_rotate_encryption_key()

    def test_wrong_key_reads_as_empty_not_crash(self):
        with patch.dict(odoo_config.options, {crypto.CONFIG_OPTION: crypto.generate_key()}), \
                self.assertLogs("bj.api.crypto", "ERROR"):
            self.config.invalidate_recordset()
            self.assertFalse(self.config.password)
