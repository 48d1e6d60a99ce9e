"""The moderation admin: the review queue (``queue``), the decisions' history
(``decisions``), the claims on ads in review (``claims``) and the model registry with the
live audit of automatic decisions (``registry``); importing registers them."""

from . import claims, decisions, queue, registry  # noqa: F401
