"""Operator commands: agency credentials and personal-data key rotation."""

import json
import subprocess
import sys

import httpx
from sqlalchemy import text

from services.intake.privacy import FieldCipher, generate_key
from shared import db
from shared.settings import Settings
from tests.conftest import service_env
from tests.e2e.test_spine import CONSULTATION_8050
from tests.intake.conftest import with_person


def marugoto(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=service_env(settings, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_issued_secret_gets_a_token_until_revoked(intake: httpx.AsyncClient, intake_settings: Settings) -> None:
    unbound = marugoto(intake_settings, "agencies", "add", "--id", "nabari-npo", "--scopes", "submit")
    assert unbound.returncode == 2 and "--municipalities" in unbound.stderr
    added = marugoto(
        intake_settings,
        "agencies",
        "add",
        "--id",
        "nabari-npo",
        "--name",
        "NPO",
        "--scopes",
        "submit",
        "--municipalities",
        "242080",
    )
    assert added.returncode == 0, added.stderr
    lines = dict(line.split("=", 1) for line in added.stdout.splitlines() if "=" in line)
    assert lines["client_id"] == "nabari-npo"
    secret = lines["client_secret"]

    listed = marugoto(intake_settings, "agencies", "list")
    assert "nabari-npo\tNPO\tsubmit\t242080\tactive" in listed.stdout
    assert secret not in listed.stdout

    form = {"grant_type": "client_credentials", "client_id": "nabari-npo", "client_secret": secret}
    granted = await intake.post("/v1/token", data=form)
    assert granted.status_code == 200, granted.text
    token = granted.json()
    assert token["token_type"] == "Bearer" and token["scope"] == "submit" and token["expires_in"] > 0
    submitted = await intake.post(
        "/v1/consultations", json=CONSULTATION_8050, headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert submitted.status_code == 202

    wrong = await intake.post("/v1/token", data={**form, "client_secret": secret + "x"})
    assert wrong.status_code == 401
    assert wrong.headers["content-type"] == "application/problem+json"

    assert marugoto(intake_settings, "agencies", "revoke", "--id", "nabari-npo").returncode == 0
    assert (await intake.post("/v1/token", data=form)).status_code == 401


async def test_rotation_re_encrypts_personal_details_under_the_new_key(
    intake: httpx.AsyncClient, intake_settings: Settings, as_partner: dict[str, str]
) -> None:
    body = with_person(CONSULTATION_8050, name="名張 花子", phone="0595-00-1111")
    assert (await intake.post("/v1/consultations", json=body, headers=as_partner)).status_code == 202
    old_keys = [k.get_secret_value() for k in intake_settings.personal_data_keys]
    new_key = generate_key()

    rotated = marugoto(
        intake_settings, "personal-data", "rotate", MARUGOTO_PERSONAL_DATA_KEYS=json.dumps([new_key, *old_keys])
    )
    assert rotated.returncode == 0, rotated.stderr
    assert int(rotated.stdout.split()[1]) >= 2

    only_new = FieldCipher([new_key])
    engine = db.make_engine(intake_settings, "intake")
    try:
        with engine.connect() as conn:
            stored = [row[0] for row in conn.execute(text("SELECT personal FROM intake.member"))]
    finally:
        engine.dispose()
    tokens = [token for personal in stored for token in personal.values()]
    assert tokens
    assert "名張 花子" in {only_new.decrypt(token) for token in tokens}, "readable with the new key alone"
