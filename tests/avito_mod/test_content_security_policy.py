"""Every answer carries a Content-Security-Policy that runs only this site's scripts: the
pages' inline <script> and <style> blocks carry the answer's nonce, and ``check --deploy``
warns when the policy is missing or loosened. (The browser tests check that Chromium's
console shows no violation on the pages they drive.)"""

from __future__ import annotations

import re

import pytest
from django.core import checks
from django.test import Client
from django.urls import reverse

from ads.models import Ad
from avito_mod.deployment.checks import check_content_security_policy
from tests.support.factories import make_ad

pytestmark = pytest.mark.django_db

INLINE = re.compile(r"<(script|style)\b([^>]*)>", re.I)


def policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {
        name: values
        for name, *values in (part.split() for part in header.split(";") if part.strip())
    }


def assert_only_nonced_inline_blocks(response) -> int:
    """Checks the policy and that every inline block carries its nonce; returns how many
    inline blocks the page has."""
    directives = policy(response)
    assert directives["default-src"] == ["'self'"]
    assert "'unsafe-inline'" not in directives["script-src"]
    assert directives["object-src"] == directives["frame-ancestors"] == ["'none'"]
    nonces = {v[len("'nonce-") : -1] for v in directives["script-src"] if v.startswith("'nonce-")}
    inline = 0
    for tag, attributes in INLINE.findall(response.content.decode()):
        if tag.lower() == "script" and "src=" in attributes:
            continue
        if 'type="application/json"' in attributes:
            continue  # data, never run
        inline += 1
        nonce = re.search(r'nonce="([^"]+)"', attributes)
        assert nonce and nonce[1] in nonces, f"<{tag}{attributes}> without the page's nonce"
    return inline


def test_the_sellers_pages_send_the_policy(seller, media):
    client = Client()
    for url in ("/accounts/login/", "/accounts/signup/", "/no-such-page/"):
        assert_only_nonced_inline_blocks(client.get(url))
    client.force_login(seller)
    ad = make_ad(seller)
    for url in ("/ads/", "/ads/new/", f"/ads/{ad.pk}/", f"/ads/{ad.pk}/edit/"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert_only_nonced_inline_blocks(response)


def test_the_admins_pages_and_their_inline_blocks_carry_the_nonce(admin_client, seller, media):
    ad = make_ad(seller)
    ad.send_to_review(Ad.ReviewReason.LOW_CONFIDENCE)
    pages = [
        reverse("admin:index"),
        reverse("admin:moderation_reviewitem_changelist"),
        reverse("admin:moderation_reviewitem_change", args=[ad.pk]),
        reverse("admin:classifier_modelversion_changelist"),
        reverse("admin:classifier_trainingimage_changelist"),
        reverse("admin:moderation_moderationdecision_changelist"),
    ]
    inline = 0
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        inline += assert_only_nonced_inline_blocks(response)
    assert inline >= 3  # the queue's styles, its detail page's script, the registry's styles


def test_the_api_and_its_docs_send_the_policy(seller):
    assert "Content-Security-Policy" in Client().get("/api/v1/ads/")
    docs = Client().get("/api/docs/")
    assert docs.status_code == 200
    assert_only_nonced_inline_blocks(docs)
    script = re.search(r'<script src="([^"]*script[^"]*)"', docs.content.decode())
    assert script, "the docs' own script is a file of its own, not inline"
    assert Client().get(script[1].replace("&amp;", "&")).status_code == 200


def test_check_deploy_warns_when_the_policy_is_loosened_or_missing(settings):
    assert check_content_security_policy() == []
    directives = settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]
    settings.CONTENT_SECURITY_POLICY = {
        "DIRECTIVES": directives | {"script-src": ["'self'", "'unsafe-inline'"]}
    }
    loose = check_content_security_policy()
    assert [w.id for w in loose] == ["deployment.W012"] and "'unsafe-inline'" in loose[0].msg
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": ["'self'"]}}
    assert {w.id for w in check_content_security_policy()} == {"deployment.W011"}
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if not m.startswith("csp.")]
    assert [w.id for w in check_content_security_policy()] == ["deployment.W010"]
    # Registered with the deployment checks.
    ids = {m.id for m in checks.run_checks(include_deployment_checks=True, tags=["security"])}
    assert "deployment.W010" in ids
