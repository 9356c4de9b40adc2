"""Encryption of secrets at rest (Fernet, from ``cryptography``).

A key source is a comma-separated list of Fernet keys: the first one encrypts,
all of them decrypt.  That is what makes key rotation possible without a
flag day: put the new key first, keep the old one after it, re-encrypt, then
drop the old key.
"""

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

CONFIG_OPTION = "bjet_api_sync_encryption_key"
ENVIRONMENT_VARIABLE = "BJET_API_SYNC_ENCRYPTION_KEY"
SYSTEM_PARAMETER = "bjet_api_sync.encryption_key"

# Prefix of every stored ciphertext, so a stored value is recognisable and a
# plaintext can never be mistaken for one.
CIPHERTEXT_PREFIX = "fernet:"


class SecretDecryptionError(Exception):
    """A stored secret cannot be decrypted with any of the configured keys."""


def generate_key():
    return Fernet.generate_key().decode()


def split_keys(text):
    """Return the keys of a comma-separated key list, ignoring blanks."""
    return [key.strip() for key in (text or "").split(",") if key.strip()]


def validate_keys(keys):
    """Raise ``ValueError`` naming the position of the first invalid key."""
    if not keys:
        raise ValueError("No encryption key is configured.")
    for index, key in enumerate(keys, start=1):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"Encryption key #{index} is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes)."
            ) from error


class SecretBox:
    """Encrypts with the first key and decrypts with any of ``keys``."""

    def __init__(self, keys):
        validate_keys(keys)
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])

    def encrypt(self, plaintext):
        if not plaintext:
            return False
        token = self._fernet.encrypt(plaintext.encode()).decode()
        return CIPHERTEXT_PREFIX + token

    def decrypt(self, stored):
        if not stored:
            return False
        if not stored.startswith(CIPHERTEXT_PREFIX):
            raise SecretDecryptionError("The stored value is not an encrypted secret.")
        try:
            return self._fernet.decrypt(stored[len(CIPHERTEXT_PREFIX):].encode()).decode()
        except InvalidToken as error:
            raise SecretDecryptionError(
                "The secret was encrypted with a key that is no longer configured."
            ) from error

    def reencrypt(self, stored):
        """Return ``stored`` encrypted under the first key."""
        if not stored:
            return stored
        return self.encrypt(self.decrypt(stored))
