"""The admin's warning when the active model cannot serve (``templates/admin/base_site.html``)."""

from django import template

from classifier.checks import active_model_problem

register = template.Library()


@register.inclusion_tag("admin/classifier/model_health.html", takes_context=True)
def model_health(context) -> dict:
    """On every admin page a staff member sees: ads going to review because of the model
    must not look like a quiet day."""
    request = context.get("request")
    if request is None or not request.user.is_staff:
        return {"problem": None}
    return {"problem": active_model_problem()}
