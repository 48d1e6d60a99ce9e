"""The classifier tests' fixtures: a moderator's session, the training tasks sent to the
broker, the backbone's runs counted."""

from __future__ import annotations

import pytest

from tests.support.retraining import make_moderator


@pytest.fixture
def moderator_client(client):
    client.force_login(make_moderator())
    return client


@pytest.fixture
def sent_trainings(monkeypatch):
    """The training tasks sent to the broker (the boundary to the training worker)."""
    from classifier import tasks

    sent = []
    monkeypatch.setattr(tasks.train_version, "delay", sent.append)
    monkeypatch.setattr(tasks.find_label_errors, "delay", sent.append)
    return sent


@pytest.fixture
def backbone_runs(monkeypatch):
    """How many photos each call of the (real) backbone computed features for."""
    from classifier.ml import features

    real, runs = features.compute, []

    def counted(pixels, *args, **kwargs):
        runs.append(len(pixels))
        return real(pixels, *args, **kwargs)

    monkeypatch.setattr(features, "compute", counted)
    return runs
