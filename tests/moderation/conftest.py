"""The moderation tests' fixtures: a moderator and their session, a candidate version."""

from __future__ import annotations

import pytest

from classifier.models import ModelVersion
from tests.support.review_queue import (
    make_moderator,
)


@pytest.fixture
def moderator(db):
    return make_moderator("mona")


@pytest.fixture
def moderator_client(client, moderator):
    client.force_login(moderator)
    return client


@pytest.fixture
def version(db):
    return ModelVersion.objects.create(
        number=ModelVersion.next_number(),
        status=ModelVersion.Status.CANDIDATE,
        classes=["laptop", "phone"],
    )
