"""Development keys for `marugoto up` and the tests; production takes its keys from a secret store."""

import json
import os
from pathlib import Path

from cryptography.fernet import Fernet

from shared.auth import generate_signing_key


def ensure_dev_secrets(directory: Path) -> dict[str, str]:
    """Create (once) a signing key pair and personal-data keys under `directory`; returns their env vars.

    The keys are kept between runs so that data encrypted in one run can be read in the next.
    """
    directory.mkdir(parents=True, exist_ok=True)
    private_file, public_file = directory / "auth-private.pem", directory / "auth-public.pem"
    keys_file = directory / "personal-data-keys.json"
    if not private_file.exists() or not public_file.exists():
        private_pem, public_pem = generate_signing_key()
        _write_private(private_file, private_pem)
        public_file.write_text(public_pem)
    if not keys_file.exists():
        keys = {"data_keys": [Fernet.generate_key().decode()], "index_key": Fernet.generate_key().decode()}
        _write_private(keys_file, json.dumps(keys))
    keys = json.loads(keys_file.read_text())
    return {
        "MARUGOTO_AUTH_PRIVATE_KEY_FILE": str(private_file.resolve()),
        "MARUGOTO_AUTH_PUBLIC_KEY_FILES": json.dumps([str(public_file.resolve())]),
        "MARUGOTO_PERSONAL_DATA_KEYS": json.dumps(keys["data_keys"]),
        "MARUGOTO_PERSONAL_INDEX_KEY": keys["index_key"],
    }


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
