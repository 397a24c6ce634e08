"""Schemathesis over intake's OpenAPI document, against a running intake process: no 5xx, no response
outside the documented statuses, content types and schemas."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.core.result import Ok

from services.cli import upgrade_databases
from shared.auth import Scope
from shared.settings import Settings
from tests.conftest import make_settings, new_database, new_topic_prefix, service_env
from tests.e2e.processes import ServiceProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def fuzz_settings(
    kafka_bootstrap: str, postgres_admin_url: str, secrets_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Any:
    with new_database(postgres_admin_url) as database_url:
        prefix = await new_topic_prefix(kafka_bootstrap)
        yield make_settings(kafka_bootstrap, database_url, prefix, secrets_env, tmp_path_factory.mktemp("fuzz"))


@pytest.fixture(scope="module")
def intake_process(fuzz_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    upgrade_databases(fuzz_settings, ["intake"])
    process = ServiceProcess("intake", service_env(fuzz_settings), Path(tmp_path_factory.mktemp("logs")))
    process.start()
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]
EXAMPLES_PER_OPERATION = 30


def test_intake_api_conforms_to_its_openapi_document(
    intake_process: ServiceProcess, bearer: Callable[..., dict[str, str]]
) -> None:
    schema = schemathesis.openapi.from_url(f"{intake_process.url}/openapi.json")
    headers = bearer("nabari-shakyo", Scope.submit, Scope.read_own, Scope.operator)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        operations.append(result.ok())
    assert len(operations) >= 9, [op.label for op in operations]
    failures: dict[str, str] = {}
    calls: dict[str, int] = {}

    def exercise(operation: Any) -> Callable[[], None]:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            calls[operation.label] += 1
            case.call_and_validate(base_url=intake_process.url, headers=headers, checks=CHECKS)

        return run

    for operation in operations:
        calls[operation.label] = 0
        try:
            exercise(operation)()
        except (Exception, BaseExceptionGroup) as failure:
            failures[operation.label] = str(failure)[:2000]
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
    assert all(count > 0 for count in calls.values()), calls
