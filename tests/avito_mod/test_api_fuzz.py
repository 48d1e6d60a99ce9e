"""A property-based run against the live API: schemathesis generates requests for every
operation of the OpenAPI schema (valid and invalid ones), and no answer may be a 5xx."""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from django.core.cache import cache
from hypothesis import HealthCheck, given, settings
from rest_framework.authtoken.models import Token

from tests.support.factories import make_ad

EXAMPLES_PER_OPERATION = 15


# Serialized like every live-server test here: the categories and the default model the
# migrations install come back for the next test, and the flush does not re-create rows
# the next test's restore would duplicate.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_no_generated_request_gets_a_server_error(live_server, tiny_version, seller, media):
    cache.clear()  # rate-limit counters of earlier tests
    make_ad(seller, photos=2)  # something real behind the ids the run may hit
    headers = {"Authorization": f"Token {Token.objects.create(user=seller).key}"}
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9  # every route of the API, not a schema that lost some
    statuses = Counter()
    for operation in operations:
        check_operation(operation, headers, statuses)
    # The run reached the views: it was answered both yes and no, never with a 5xx.
    assert any(200 <= status < 300 for status in statuses), statuses
    assert any(400 <= status < 500 for status in statuses), statuses


def check_operation(operation, headers: dict, statuses: Counter) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def no_server_error(case):
        response = case.call(headers=headers)
        statuses[response.status_code] += 1
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
        )

    no_server_error()
