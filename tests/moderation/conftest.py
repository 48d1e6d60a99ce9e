"""The moderation tests' fixtures: a candidate version (the moderator and their session
are tests/conftest.py's)."""

from __future__ import annotations

import pytest

from classifier.models import ModelVersion


@pytest.fixture
def version(db):
    return ModelVersion.objects.create(
        number=ModelVersion.next_number(),
        status=ModelVersion.Status.CANDIDATE,
        classes=["laptop", "phone"],
    )
