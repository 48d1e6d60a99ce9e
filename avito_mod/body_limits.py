"""Caps on request bodies, applied before Django reads them (issue 27).

Each view takes at most its own cap (``body_caps``): an ad's views its photos together
(``ADS_MAX_AD_PHOTO_BYTES``, or ``ADS_MAX_PHOTOS`` photos of ``ADS_MAX_PHOTO_BYTES`` if
less), the quick check one photo, the admins' example photos their larger submission cap
(zips), every other view ``AVITO_MAX_REQUEST_BYTES``. A declared ``Content-Length`` over
the cap is answered ``413`` at once, without reading a byte of the body; a body without a
length (chunked) is ``411``, as Django would read none of it anyway. A file of a
multipart body is cut off as it arrives once it passes its cap, and the request answered
``413`` naming it: for photos, 1 MiB past ``ADS_MAX_PHOTO_BYTES``, so that a photo just
over it is still read to its end and refused by ``ads.uploads`` with its size, as ever (and
so are an ad's photos over ``ADS_MAX_AD_PHOTO_BYTES`` together, within the form's room).
The reverse proxy applies the same caps (``deploy/nginx/avito-mod.conf``), so that none of
this is even sent to the web process.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.template.loader import render_to_string
from django.urls import Resolver404, resolve

# Room for the form's other fields and the multipart headers around the files.
FORM_SLACK_BYTES = 1024 * 1024
# The views that take an ad's photos, by URL name: the API's create and edit (the sellers'
# pages post their form to these from their script).
AD_UPLOADS = frozenset({"ads:ad-list", "ads:ad-detail"})
EXAMPLE_PHOTOS = "admin:classifier_trainingimage_add_photos"


@dataclass(frozen=True)
class Caps:
    """What a view accepts: bytes of the whole body, of each file in it, and the rule
    behind the body's cap in words (for the refusal), if it is not plain."""

    body: int
    file: int
    rule: str = ""


def body_caps(request: HttpRequest) -> Caps:
    """The caps of ``request``'s view."""
    try:
        view = resolve(request.path_info).view_name
    except Resolver404:
        view = ""
    photo = settings.ADS_MAX_PHOTO_BYTES
    if view in AD_UPLOADS:
        photos = min(settings.ADS_MAX_PHOTOS * photo, settings.ADS_MAX_AD_PHOTO_BYTES)
        rule = f"an ad's photos may take {_size(photos)} together"
        return Caps(photos + FORM_SLACK_BYTES, photo + FORM_SLACK_BYTES, rule)
    if view == "quick-check":
        return Caps(photo + FORM_SLACK_BYTES, photo + FORM_SLACK_BYTES)
    if view == EXAMPLE_PHOTOS:  # photos and zips of them: the form says what is over its cap
        most = settings.CLASSIFIER_PHOTO_UPLOAD_MAX_BYTES + FORM_SLACK_BYTES
        return Caps(most, most)
    return Caps(settings.AVITO_MAX_REQUEST_BYTES, settings.AVITO_MAX_REQUEST_BYTES)


class FileTooLarge(MultiPartParserError):
    """A file of the body passed its cap: reading stops (Django and DRF answer 400 for a
    parse error, which ``BodyLimitMiddleware`` turns into this 413)."""


class CappedFileUploadHandler(FileUploadHandler):
    """First of the upload handlers: counts each file's bytes as they arrive and stops the
    whole body there once one passes ``cap``; nothing more is read or written."""

    def __init__(self, request: HttpRequest, cap: int):
        super().__init__(request)
        self.cap = cap

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > self.cap:
            message = f"the file {self.file_name!r} is too large (more than {_size(self.cap)})"
            self.request.body_refused = message
            raise FileTooLarge(message)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler stores the file


class BodyLimitMiddleware:
    """``413``/``411`` for bodies over their view's cap (see the module's docstring). First
    in ``MIDDLEWARE``: nothing before it reads the body."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        caps = body_caps(request)
        length = request.META.get("CONTENT_LENGTH") or ""
        if not length and _chunked(request):
            message = "Send the body with a Content-Length (chunked bodies are not accepted)."
            return refusal(request, message, status=411)
        if length.isdigit() and int(length) > caps.body:
            most = _size(caps.body) + (f": {caps.rule}" if caps.rule else "")
            message = f"The request is too large ({_size(int(length))}; at most {most})."
            return refusal(request, message)
        request.upload_handlers.insert(0, CappedFileUploadHandler(request, caps.file))
        response = self.get_response(request)
        refused = getattr(request, "body_refused", None)
        if refused:  # whatever the view made of the parse error it met
            return refusal(request, f"The request is too large: {refused}.")
        return response


def refusal(request: HttpRequest, message: str, status: int = 413) -> HttpResponse:
    """The answer in the shape of the way in: JSON ``{"detail": …}`` for the API, a page
    otherwise. (gunicorn then reads at most a little of the rest of the body, to nowhere,
    before it closes the connection.)"""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": message}, status=status)
    page = render_to_string("request_refused.html", {"message": message, "status": status})
    return HttpResponse(page, status=status)


def _chunked(request: HttpRequest) -> bool:
    return "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()


def _size(count: int) -> str:
    mib = count / (1024 * 1024)
    return f"{mib:.1f} MiB" if mib >= 1 else f"{count:,} bytes"
