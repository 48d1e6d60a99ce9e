"""The API's sign-in: ``POST /api/v1/auth/token/`` with ``username`` and ``password``."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from .limits import locked_out_response, signed_in
from .serializers import AuthTokenSerializer

DETAIL = inline_serializer("SignInRefused", {"detail": serializers.CharField()})


class TokenView(ObtainAuthToken):
    """DRF's ``obtain_auth_token`` with the sign-in limits. Axes refuses a locked-out sign-in
    inside ``authenticate()``, which DRF then reports as wrong credentials; this view answers
    it as the other ways in do (``429``, ``Retry-After``, the wait in words). A correct
    password forgives the account's failures from this address and makes the address and
    the client (a cookie) known, as a sign-in page does."""

    serializer_class = AuthTokenSerializer

    @extend_schema(
        responses={
            200: AuthTokenSerializer,
            400: OpenApiResponse(description="Wrong username or password, or one missing."),
            429: OpenApiResponse(
                DETAIL,
                description="Too many failed sign-ins for this account or from this address "
                "(or another sign-in from this address is being checked): not checked; "
                "`Retry-After` says in how many seconds to try again.",
            ),
        }
    )
    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        if not serializer.is_valid():
            # Axes marks the request it refused (DRF's wrapper: the middleware never sees it).
            if getattr(request, "axes_locked_out", False):
                return locked_out_response(
                    request, None, getattr(request, "axes_credentials", None)
                )
            raise ValidationError(serializer.errors)
        user = serializer.validated_data["user"]
        signed_in(request._request, user)  # the Django request: its cookie is set on the way out
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})
