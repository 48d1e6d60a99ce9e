"""The moderators' review queue: the ads in review, oldest first, each decided in one click
or one key, in place (``moderation/static/moderation/queue.js``) or by POST-and-redirect.

Thin on purpose: every decision, from a row's buttons, the detail page or a bulk action, is
a call of ``moderation.services.decide`` (undo: ``services.undo``); this module shows the
queue, holds its top for the moderator (``services.claim``) and reports back; an open
page's view of who holds what is ``queue_claims``.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBadRequest, HttpResponseRedirect, JsonResponse, QueryDict
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from accounts.roles import DECIDE_AD
from ads.admin import photo_url
from ads.models import Ad, AdImage, Category

from .. import audit, pulse, services
from ..models import ModerationDecision, ReviewItem
from .audit_tables import live_audit
from .decisions import DecisionInline
from .pulse_charts import pulse_charts
from .queue_claims import BadAdList, asked_of, claims_answer, claims_view, page_state
from .queue_list import (
    KindFilter,
    PredictedCategoryFilter,
    ReviewQueueChangeList,
    SellerCategoryFilter,
)
from .summaries import summary

PULSE = "moderation.view_queue_pulse"

Action = ModerationDecision.Action
CONTROLS_TEMPLATE = "admin/moderation/reviewitem/decide_controls.html"
FACTS_TEMPLATE = "admin/moderation/reviewitem/facts.html"
# What marks an audit in the queue; sellers never see it.
AUDIT_NOTE = "Audit: published automatically by the model — check it"
# Photos in the queue: large enough to tell a phone's back from a laptop's lid.
QUEUE_PHOTO_PX = 160
# The queue's script fetching the next ads asks for this many rows of the queue, not a page.
TOP_UP_ROWS = "rows"


class DecisionForm(forms.Form):
    """What a decision carries besides its action: from a row's buttons or a bulk action."""

    category = forms.ModelChoiceField(
        Category.objects.active(),
        required=False,
        empty_label="the suggested one",
        label="Recategorize in",
    )
    reason = forms.ChoiceField(
        choices=[("", "—"), *Ad.RejectionReason.choices], required=False, label="Reject as"
    )
    note = forms.CharField(required=False, max_length=1000, label="Note")
    # Decide an ad another moderator holds (services.HeldByAnother): recorded on the decision.
    takeover = forms.BooleanField(required=False, label="Take over")


class ReviewActionForm(DecisionForm, helpers.ActionForm):
    """The bulk actions' form: the action, then the category, reason and note they use."""


@admin.register(ReviewItem)
class ReviewQueueAdmin(admin.ModelAdmin):
    # Four columns, so that a row fits a 1366 px screen with the filters beside it: the
    # photos large enough to judge, the title, the facts, and the decision controls.
    list_display = ["photos", "title", "facts", "decide"]
    list_display_links = ["title"]
    list_filter = [
        KindFilter,
        "review_reason",
        ("category", SellerCategoryFilter),
        PredictedCategoryFilter,
    ]
    search_fields = ["title", "seller__username"]
    ordering = ["decided_at", "pk"]
    list_per_page = 50
    actions = ["accept_selected", "recategorize_selected", "reject_selected"]
    action_form = ReviewActionForm
    fields = [
        "large_photos",
        "title",
        "description",
        "price",
        "seller_category",
        "suggestion",
        "why_here",
        "waiting",
        "seller",
        "created_at",
    ]
    readonly_fields = fields
    inlines = [DecisionInline]

    def get_queryset(self, request):
        # A fixed number of queries for any page (the changelist's own list_select_related
        # is ignored once the queryset selects related rows itself).
        # The ads in review, and those the model published that are drawn for its audit.
        queryset = super().get_queryset(request).visible_to(request.user)
        return audit.in_queue(queryset).with_photos().select_related("seller")

    def changelist_view(self, request, extra_context=None):
        # The admin's navigation sidebar would take a quarter of a laptop's screen from the
        # queue's rows; the breadcrumbs lead back.
        context = {
            "title": "Review queue",
            "is_nav_sidebar_enabled": False,
            "reject_reasons": Ad.RejectionReason.choices,  # numbered like their keys
            "pulse_url": reverse(f"admin:{self._url_name('pulse')}")
            if request.user.has_perm(PULSE)
            else None,
        }
        if TOP_UP_ROWS in request.GET and not self._take_top_up_rows(request):
            message = f"{TOP_UP_ROWS}: how many rows of the queue to show, e.g. {TOP_UP_ROWS}=12"
            return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
        response = super().changelist_view(request, context | (extra_context or {}))
        if isinstance(response, TemplateResponse) and "cl" in response.context_data:
            claimed = response.context_data["cl"].claimed
            response.context_data["queue_state"] = page_state(request, claimed) | {
                "claims_url": reverse(f"admin:{self._url_name('claims')}")
            }
        return response

    def _take_top_up_rows(self, request) -> bool:
        """``?rows=N`` (the queue's script asking for its next ads): at most a page of rows
        for this request, the parameter taken out of the query (the changelist would refuse
        it as a filter). False when N is not a positive number."""
        rows = request.GET[TOP_UP_ROWS]
        if not rows.isdigit() or int(rows) < 1:
            return False
        request.GET = request.GET.copy()
        del request.GET[TOP_UP_ROWS]
        request.queue_rows = min(int(rows), self.list_per_page)
        return True

    def get_changelist(self, request, **kwargs):
        return ReviewQueueChangeList

    def get_list_display(self, request):
        if self.has_decide_permission(request):
            return self.list_display
        return [name for name in self.list_display if name != "decide"]

    # --- Permissions: look and decide; a decision is never an edit of the ad's fields.

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_decide_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(DECIDE_AD)

    # --- Columns

    @admin.display(description="Photos and what the model sees in them")
    def photos(self, ad: Ad):
        return _photos(ad, QUEUE_PHOTO_PX)

    @admin.display(description="Ad", ordering="decided_at")
    def facts(self, ad: Ad):
        """Price, seller, the seller's and the suggested category, why it is here, how long."""
        context = {"ad": ad, "waiting": self.waiting(ad), "audit_note": AUDIT_NOTE}
        return render_to_string(FACTS_TEMPLATE, context)

    @admin.display(description="Photos and what the model sees in them")
    def large_photos(self, ad: Ad):
        return _photos(ad, 240)

    @admin.display(description="Seller's category", ordering="category__name")
    def seller_category(self, ad: Ad) -> str:
        return ad.category.name

    @admin.display(description="Suggested category", ordering="suggested_category__name")
    def suggestion(self, ad: Ad) -> str:
        return ad.suggested_category.name if ad.suggested_category else "—"

    @admin.display(description="Why here")
    def why_here(self, ad: Ad) -> str:
        if ad.audited:
            return AUDIT_NOTE
        return ad.get_review_reason_display() or "—"

    @admin.display(description="Waiting", ordering="decided_at")
    def waiting(self, ad: Ad) -> str:
        return timesince(ad.decided_at, depth=1) if ad.decided_at else "—"

    @admin.display(description="Decide")
    def decide(self, ad: Ad) -> str:
        return self._controls(ad, ad.category_choices)

    # --- Deciding: one URL per action for a row or the detail page, and bulk actions.

    def get_urls(self):
        view = self.admin_site.admin_view(require_POST(self.decide_view))
        own = [
            path(f"<int:object_id>/{act}/", view, {"action": act}, name=self._url_name(act))
            for act in Action.values
        ]
        undo = self.admin_site.admin_view(require_POST(self.undo_view))
        own.append(path("undo/<int:decision_id>/", undo, name=self._url_name("undo")))
        pulse_view = self.admin_site.admin_view(require_safe(self.pulse_view))
        own.append(path("pulse/", pulse_view, name=self._url_name("pulse")))
        claims = self.admin_site.admin_view(require_http_methods(["GET", "POST"])(claims_view))
        own.append(path("claims/", claims, name=self._url_name("claims")))
        return own + super().get_urls()

    def pulse_view(self, request):
        """The queue's pulse for admins: its length and oldest ad, decisions per day and
        per moderator, how often moderators follow the model's suggestion, and the live
        audit of automatic decisions over the window chosen (``?audit_days=``)."""
        if not request.user.has_perm(PULSE):
            raise PermissionDenied
        try:
            days = audit.window(request.GET.get("audit_days"))
        except audit.BadWindow as error:
            return HttpResponseBadRequest(str(error), content_type="text/plain; charset=utf-8")
        figures = pulse.pulse(days=7)
        context = {
            **self.admin_site.each_context(request),
            "title": "The review queue's pulse",
            "opts": self.opts,
            "pulse": figures,
            "charts": pulse_charts(figures),
            "live_audit": live_audit(days, request.path),
            "workers": pulse.worker_states(),
        }
        return TemplateResponse(request, "admin/moderation/pulse.html", context)

    def decide_view(self, request, object_id: int, action: str):
        """A row's or the detail page's button: decide one ad, then back to the queue; or,
        asked for JSON (the queue's script), say what was done and where to undo it."""
        if not self.has_decide_permission(request):
            raise PermissionDenied
        if not _wants_json(request):
            self._decide(request, [object_id], action)
            return HttpResponseRedirect(self._queue_url(request))
        form = DecisionForm(request.POST)
        if not form.is_valid():
            return JsonResponse({"message": f"Nothing done: {_form_errors(form)}"}, status=400)
        try:
            # The page's ads, asked about with the decision (queue_claims.claims_answer).
            asked = asked_of(request.POST)
        except BadAdList as error:
            return JsonResponse({"message": f"Nothing done: {error}"}, status=400)
        try:
            fields = _fields_for(action, form.cleaned_data)
            decision = services.decide(object_id, request.user, action, **fields)
        except services.HeldByAnother as error:
            # The same status as an ad gone from the queue, and who holds this one: the
            # queue may offer to take it over (POST again with takeover=1).
            answer = {"message": str(error), "held_by": error.holder}
            return JsonResponse(answer | _claims(request.user, asked), status=409)
        except services.NotInReview as error:
            return JsonResponse({"message": str(error)} | _claims(request.user, asked), status=409)
        except services.DecisionError as error:
            return JsonResponse({"message": str(error)}, status=400)
        undo = reverse(
            f"admin:{self._url_name('undo')}", args=[decision.pk], current_app=self.admin_site.name
        )
        answer = {"message": summary([decision]), "undo": undo}
        return JsonResponse(answer | _claims(request.user, asked))

    def undo_view(self, request, decision_id: int):
        """Undo one's own decision of a moment ago: the ad is back in the queue."""
        if not self.has_decide_permission(request):
            raise PermissionDenied
        try:
            ad = services.undo(decision_id, request.user)
        except services.DecisionError as error:
            if _wants_json(request):
                return JsonResponse({"message": str(error)}, status=409)
            self.message_user(request, str(error), messages.ERROR)
        else:
            said = f"Undone: “{ad}” is back in the queue, and its photos' labels were taken back."
            if _wants_json(request):
                return JsonResponse({"message": said, "ad": ad.pk})
            self.message_user(request, said, messages.SUCCESS)
        return HttpResponseRedirect(self._queue_url(request))

    @admin.action(description="Accept: publish in the seller's category", permissions=["decide"])
    def accept_selected(self, request, queryset) -> None:
        self._decide(request, _selected_ids(request, queryset), Action.ACCEPT)

    @admin.action(
        description="Recategorize: publish in the category chosen (or each one's suggestion)",
        permissions=["decide"],
    )
    def recategorize_selected(self, request, queryset) -> None:
        self._decide(request, _selected_ids(request, queryset), Action.RECATEGORIZE)

    @admin.action(description="Reject, for the reason chosen", permissions=["decide"])
    def reject_selected(self, request, queryset) -> None:
        self._decide(request, _selected_ids(request, queryset), Action.REJECT)

    def _decide(self, request, ad_ids: list[int], action: str) -> None:
        form = DecisionForm(request.POST)
        if not form.is_valid():
            self.message_user(request, f"Nothing done: {_form_errors(form)}", messages.ERROR)
            return
        fields = _fields_for(action, form.cleaned_data)
        decided = []
        for ad_id in ad_ids:
            try:
                decided.append(services.decide(ad_id, request.user, action, **fields))
            except services.DecisionError as error:
                self.message_user(request, str(error), messages.ERROR)
        if decided:
            self.message_user(request, summary(decided), messages.SUCCESS)

    def _queue_url(self, request) -> str:
        url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist",
            current_app=self.admin_site.name,
        )
        filters = QueryDict(request.POST.get("_changelist_filters", ""), mutable=True)
        # Back with the moderator's filters, at the top: the page they were on may be gone.
        for key in ("p", "e"):
            filters.pop(key, None)
        return f"{url}?{filters.urlencode()}" if filters else url

    def _url_name(self, action: str) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}_{action}"

    # --- The decision controls, in a row and on the detail page

    def _controls(
        self, ad: Ad, categories: list[Category], shortcuts: bool = False, held_by=None
    ) -> str:
        choices = [category for category in categories if category.pk != ad.category_id]
        # Preselect the suggestion only if it can be chosen (it may have been deactivated).
        offered = {category.pk for category in choices}
        suggested = ad.suggested_category_id if ad.suggested_category_id in offered else None
        urls = {
            action: reverse(
                f"admin:{self._url_name(action)}", args=[ad.pk], current_app=self.admin_site.name
            )
            for action in Action.values
        }
        context = {
            "ad": ad,
            "held_by": held_by,
            "form_id": f"decide-{ad.pk}",
            "urls": urls,
            "categories": choices,
            "suggested": suggested,
            "reasons": Ad.RejectionReason.choices,
            "shortcuts": shortcuts,
        }
        return render_to_string(CONTROLS_TEMPLATE, context)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and self.has_decide_permission(request):
            categories = list(Category.objects.active())
            held_by = services.holder(obj, request.user)
            context["decide_controls"] = self._controls(
                obj, categories, shortcuts=True, held_by=held_by
            )
            context["decide_form_id"] = f"decide-{obj.pk}"
            context["queue_filters"] = request.GET.get("_changelist_filters", "")
        return super().render_change_form(request, context, add, change, form_url, obj)


def _photos(ad: Ad, size: int):
    # Each photo links to itself, full size, through the permission-checked photo view; a
    # thumbnail is scaled up to ``size``, keeping its shape (a cue in itself).
    figures = format_html_join(
        "",
        '<figure class="review-photo"><a href="{}" target="_blank" rel="noopener">'
        '<img src="{}" alt="photo {}" width="{}" height="{}"></a>'
        "<figcaption>{}</figcaption></figure>",
        (
            (url, url, image.position + 1, size, size, _predicted(image))
            for image, url in ((image, photo_url(image)) for image in ad.images.all())
        ),
    )
    return format_html('<div class="review-photos">{}</div>', figures)


def _predicted(image: AdImage) -> str:
    """What the photo looks like: its likeliest categories, e.g. "laptop 71% · tablet 22%",
    and below, quieter, what it looks like to ImageNet when the version said."""
    prediction = image.latest_prediction()
    if prediction is None:
        return "no prediction"
    looks_like = prediction.looks_like_text()
    if not looks_like:
        return prediction.top_text()
    return format_html(
        '{}<span class="review-imagenet">Looks like (ImageNet): {}</span>',
        prediction.top_text(),
        looks_like,
    )


def _claims(moderator, asked: tuple[list[int], bool, bool]) -> dict:
    """Who holds the page's ads, for a decision's answer, when the page asked: in the
    decision's request (no second request on its heels), after its transaction (a failed
    claim never undoes a decision)."""
    ads, hold, more = asked
    return {"claims": claims_answer(moderator, ads, hold, more)} if ads or more else {}


def _wants_json(request) -> bool:
    return request.headers.get("Accept", "").startswith("application/json")


def _form_errors(form) -> str:
    return "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())


def _selected_ids(request, queryset) -> list[int]:
    # Rows that left the queue since the page was loaded are no longer in ``queryset``;
    # deciding them anyway tells the moderator about each instead of skipping them silently.
    posted = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
    selected = {int(pk) for pk in posted if pk.isdigit()}
    return sorted(selected | set(queryset.values_list("pk", flat=True)))


def _fields_for(action: str, cleaned: dict) -> dict:
    # A row posts all its inputs whichever button was clicked: keep the clicked action's.
    fields = {"note": cleaned["note"], "takeover": cleaned["takeover"]}
    if action == Action.RECATEGORIZE:
        fields["category"] = cleaned["category"]
    elif action == Action.REJECT:
        fields["reason"] = cleaned["reason"]
    return fields
