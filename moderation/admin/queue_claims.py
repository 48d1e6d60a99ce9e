"""Who holds which ads, for an open queue page (``moderation/static/moderation/queue.js``):
a GET every few seconds says which of its rows others hold and which left the queue; a POST
holds the page's next ads for the moderator when their own run out (and renews theirs). A
decision's answer says the same (``claims_answer``), so that a moderator at work needs
neither: their next ads are held by the decision that leaves them few, in its own request.

A page loaded earlier thus greys the ads a colleague took since, and the keys skip them,
instead of working into ads whose decisions the server would refuse."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse

from accounts.roles import DECIDE_AD
from ads.models import Ad

from .. import audit, services

# One page's rows, with the ads appended as the moderator works down the queue.
MOST_ADS_ASKED = 200
# "More ads wait" needs no exact count of a long queue.
MORE_COUNTED = 50


class BadAdList(ValueError):
    """The ``ads`` parameter is not a short comma-separated list of ad ids."""


def ad_ids(raw: str) -> list[int]:
    parts = [part for part in raw.split(",") if part]
    if not all(part.isdigit() and len(part) <= 12 for part in parts):
        raise BadAdList("ads: a comma-separated list of ad ids, e.g. ads=12,13,15")
    if len(parts) > MOST_ADS_ASKED:
        raise BadAdList(f"ads: at most {MOST_ADS_ASKED} ads at once, not {len(parts)}")
    return list(dict.fromkeys(int(part) for part in parts))


def page_state(request, claimed: set[int]) -> dict:
    """What the queue's script needs from the server: the ads held for this moderator on
    loading the page, how long undo lasts, how often to ask who holds what."""
    return {
        "decides": request.user.has_perm(DECIDE_AD),
        "mine": sorted(claimed),
        "undo_seconds": settings.MODERATION_UNDO_SECONDS,
        "poll_seconds": settings.MODERATION_CLAIMS_POLL_SECONDS,
        "claim_top": settings.MODERATION_CLAIM_TOP,
    }


def asked_of(data) -> tuple[list[int], bool, bool]:
    """A claims request's ``ads`` (a page's, in its order), ``hold`` and ``more`` flags;
    raises ``BadAdList``."""
    return ad_ids(data.get("ads", "")), data.get("hold") == "1", data.get("more") == "1"


def claims_answer(moderator, asked: list[int], hold: bool = False, more: bool = False) -> dict:
    """Of the ads ``asked`` (a page's): those held for ``moderator`` (``mine``), those others
    hold (``held``: ad → holder), those that left the queue (``gone``). With ``hold``, first
    the first ``MODERATION_CLAIM_TOP`` of them nobody holds are held for the moderator, and
    theirs renewed. With ``more``, also whether other ads wait in the queue that nobody else
    holds (``more``, counted up to ``MORE_COUNTED``): a page with few rows left fetches more
    only then, so that a poll on a queue of two ads stays two small queries."""
    queued = audit.in_queue(Ad.objects.visible_to(moderator)).filter(pk__in=asked)
    in_queue = set(queued.values_list("pk", flat=True))
    waiting = [pk for pk in asked if pk in in_queue]
    mine, held = services.claims_among(moderator, waiting)
    if hold:
        free = [pk for pk in waiting if pk not in mine and pk not in held]
        taking = free[: settings.MODERATION_CLAIM_TOP]
        mine = services.claim(moderator, [*mine, *taking])
        if set(taking) - mine:  # another moderator took one this very moment: who?
            mine, held = services.claims_among(moderator, waiting)
    answer = {
        "mine": sorted(mine),
        "held": {str(pk): holder for pk, holder in held.items()},
        "gone": [pk for pk in asked if pk not in in_queue],
    }
    if more:
        answer["more"] = services.waiting_beyond(moderator, asked, MORE_COUNTED)
    return answer


def claims_view(request):
    """GET ``?ads=1,2,3``: of those ads, which are held for me (``mine``), which others hold
    (``held``: ad → holder) and which left the queue (``gone``); ``&more=1``: and how many
    others wait (``more``). POST ``ads=…``: the same, after holding for me the first
    ``MODERATION_CLAIM_TOP`` of them nobody holds (and renewing mine among them)."""
    if not request.user.has_perm(DECIDE_AD):
        raise PermissionDenied
    data = request.POST if request.method == "POST" else request.GET
    try:
        asked, _, more = asked_of(data)
    except BadAdList as error:
        return JsonResponse({"message": str(error)}, status=400)
    return JsonResponse(claims_answer(request.user, asked, request.method == "POST", more))
