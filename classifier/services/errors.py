"""Errors the classifier's workflows raise; their messages are meant for a person."""

from __future__ import annotations


class ClassifierError(Exception):
    """A request the classifier cannot serve; the message is meant for a person."""


class TrainingCancelled(ClassifierError):
    """The version stopped training while it trained (an admin cancelled it)."""
