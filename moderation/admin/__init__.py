"""The moderation admin: the review queue (``queue``), the decisions' history
(``decisions``) and the claims on ads in review (``claims``); importing registers them."""

from . import claims, decisions, queue  # noqa: F401
