"""The admin index's notice when the live audit shows automatic decisions wrong more often
than the target (``templates/admin/index.html``; ``moderation.audit.notices``)."""

from django import template

from moderation import audit

register = template.Library()

# Those who answer for the model: the queue's pulse and the registry show them the figures.
SEES_NOTICES = "moderation.view_queue_pulse"


@register.inclusion_tag("admin/moderation/audit_notices.html", takes_context=True)
def audit_notices(context) -> dict:
    request = context.get("request")
    if request is None or not request.user.has_perm(SEES_NOTICES):
        return {"notices": []}
    return {"notices": audit.notices()}
