"""Failed sign-ins are limited per account at a client address and per address on every way
in: the API's token (``POST /api/v1/auth/token/``), the sellers' page (``/accounts/login/``)
and the admin's (``/admin/login/``). A locked-out sign-in is a ``429`` with ``Retry-After``
and the wait in words, even with the right password; the lock-out ends with its cool-off.
Guesses sent in parallel get no more checks than the limit. Admins see and clear lock-outs.
(Guesses at one account from many addresses: tests/accounts/test_signin_guesses.py.)"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from io import StringIO

import pytest
import requests
from axes.models import AccessAttempt
from django.contrib.auth.hashers import MD5PasswordHasher
from django.core.cache import cache
from django.core.management import call_command
from django.db.models import F
from django.test import Client
from rest_framework.test import APIClient

from accounts.limits import signin_address
from accounts.middleware import SLOT_KEY
from tests.support.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db

LIMIT = 5  # the default of SIGNIN_FAILURE_LIMIT
COOL_OFF = 15 * 60  # the default of SIGNIN_LOCKOUT_SECONDS


@pytest.fixture(autouse=True)
def fresh_slots():
    cache.clear()  # the sign-in slots (accounts.middleware): the cache outlives a test
    yield
    cache.clear()


def test_the_limits_are_the_production_defaults(settings):
    # The test settings keep them: the numbers below are the ones deployed.
    assert settings.AXES_FAILURE_LIMIT == LIMIT
    assert settings.AXES_COOLOFF_TIME.total_seconds() == COOL_OFF


@dataclass(frozen=True)
class WayIn:
    name: str
    url: str
    staff: bool  # whose account signs in here

    def client(self, address: str, **headers) -> Client:
        if self.name == "token":
            return APIClient(REMOTE_ADDR=address, **headers)
        return Client(REMOTE_ADDR=address, **headers)

    def sign_in(self, client: Client, username: str, password: str = PASSWORD):
        form = {"username": username, "password": password}
        if self.name == "token":
            return client.post(self.url, form, format="json")
        if self.name == "admin":
            form["next"] = "/admin/"
        return client.post(self.url, form)

    def account(self, username: str):
        return make_user(username, staff=self.staff)

    def signed_in(self, response) -> bool:
        if self.name == "token":
            return response.status_code == 200 and "token" in response.json()
        return response.status_code == 302 and "login" not in response["Location"]

    def refused_as_wrong(self, response) -> bool:
        """The usual answer to a wrong password: the password was checked."""
        if self.name == "token":
            return response.status_code == 400
        return response.status_code == 200 and "correct username and password" in response.text


WAYS = [
    WayIn("token", "/api/v1/auth/token/", staff=False),
    WayIn("sellers", "/accounts/login/", staff=False),
    WayIn("admin", "/admin/login/", staff=True),
]


@pytest.fixture(params=WAYS, ids=lambda way: way.name)
def way(request) -> WayIn:
    return request.param


def locked_out(way: WayIn, response) -> str:
    """Checks a lock-out's answer and returns its message."""
    assert response.status_code == 429, response.content[:300]
    assert int(response["Retry-After"]) > 0
    if way.name == "token":
        message = response.json()["detail"]
    else:
        assert response["Content-Type"].startswith("text/html")
        assert "Sign-in paused" in response.text
        message = response.text
    assert "Too many failed sign-ins" in message
    return message


def fail(way: WayIn, client, username: str, times: int) -> list:
    return [way.sign_in(client, username, "wrong-password") for _ in range(times)]


# --- Per account ----------------------------------------------------------------------------


def test_failed_sign_ins_lock_the_account_out_there_even_for_the_right_password(way):
    way.account("sam")
    client = way.client("10.0.0.1")
    before = fail(way, client, "sam", LIMIT - 1)
    assert all(way.refused_as_wrong(response) for response in before)
    last = way.sign_in(client, "sam", "wrong-password")
    assert "Try again in 15 minutes." in locked_out(way, last)
    assert COOL_OFF - 5 <= int(last["Retry-After"]) <= COOL_OFF
    # The right password is not even checked while locked out, and the refusal is not
    # counted: it does not prolong the lock-out.
    right = way.sign_in(client, "sam")
    locked_out(way, right)
    assert not way.signed_in(right)
    assert AccessAttempt.objects.get(username="sam").failures_since_start == LIMIT
    # At that address only: failures elsewhere must not lock its owner out.
    assert way.signed_in(way.sign_in(way.client("10.0.0.2"), "sam"))


def test_another_account_from_another_address_is_not_affected(way):
    way.account("sam")
    way.account("olga")
    fail(way, way.client("10.0.0.1"), "sam", LIMIT)
    assert way.signed_in(way.sign_in(way.client("10.0.0.2"), "olga"))


def test_the_right_password_works_again_after_the_cool_off(way):
    way.account("sam")
    client = way.client("10.0.0.1")
    fail(way, client, "sam", LIMIT)
    # Ten minutes pass: five are left.
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=10))
    response = way.sign_in(client, "sam")
    assert "Try again in 5 minutes." in locked_out(way, response)
    assert 295 <= int(response["Retry-After"]) <= 300
    # Fifteen minutes after the last failure.
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=5, seconds=1))
    assert way.signed_in(way.sign_in(client, "sam"))


def test_a_tiny_cool_off_from_the_settings_is_over_in_a_moment(way, settings):
    settings.AXES_COOLOFF_TIME = timedelta(seconds=1)
    way.account("sam")
    client = way.client("10.0.0.1")
    response = fail(way, client, "sam", LIMIT)[-1]
    assert "Try again in 1 second." in locked_out(way, response)
    assert response["Retry-After"] == "1"
    time.sleep(1.1)
    assert way.signed_in(way.sign_in(client, "sam"))


def test_a_correct_password_forgives_the_accounts_own_failures(way):
    way.account("sam")
    client = way.client("10.0.0.1")
    fail(way, client, "sam", LIMIT - 1)
    assert way.signed_in(way.sign_in(way.client("10.0.0.1"), "sam"))
    assert not AccessAttempt.objects.filter(username="sam").exists()
    again = fail(way, client, "sam", LIMIT - 1)
    assert all(way.refused_as_wrong(response) for response in again)


# --- Per address ----------------------------------------------------------------------------


def test_one_address_guessing_across_many_usernames_is_locked_out(way):
    way.account("sam")
    way.account("olga")
    client = way.client("10.0.0.1")
    for n in range(LIMIT - 1):
        assert way.refused_as_wrong(way.sign_in(client, f"user{n}", "password1"))
    locked_out(way, way.sign_in(client, "sam", "password1"))
    # Every account is refused from that address, with its right password too...
    locked_out(way, way.sign_in(client, "olga"))
    # ...and signs in from another.
    assert way.signed_in(way.sign_in(way.client("10.0.0.2"), "olga"))


def test_signing_in_to_ones_own_account_does_not_reset_the_address_count(way):
    way.account("sam")
    client = way.client("10.0.0.1")
    for n in range(LIMIT - 1):
        way.sign_in(client, f"victim{n}", "password1")
    assert way.signed_in(way.sign_in(way.client("10.0.0.1"), "sam"))
    locked_out(way, way.sign_in(client, "victim9", "password1"))


def test_a_forged_forwarded_for_header_does_not_make_a_new_address(way):
    for n in range(LIMIT - 1):
        client = way.client("10.0.0.1", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}")
        assert way.refused_as_wrong(way.sign_in(client, f"user{n}", "password1"))
    locked_out(way, way.sign_in(way.client("10.0.0.1"), "user9", "password1"))


def test_behind_a_trusted_proxy_each_client_has_its_own_count(way, settings):
    settings.REST_FRAMEWORK = settings.REST_FRAMEWORK | {"NUM_PROXIES": 1}
    way.account("olga")
    proxy = "10.0.0.1"
    attacker = way.client(proxy, HTTP_X_FORWARDED_FOR="198.51.100.1")
    fail(way, attacker, "nobody", LIMIT)
    # A client that writes its own X-Forwarded-For is still the address the proxy saw.
    spoofing = way.client(proxy, HTTP_X_FORWARDED_FOR="192.0.2.1, 198.51.100.1")
    locked_out(way, way.sign_in(spoofing, "olga"))
    # Another client behind the same proxy is not locked out with it.
    neighbour = way.client(proxy, HTTP_X_FORWARDED_FOR="198.51.100.2")
    assert way.signed_in(way.sign_in(neighbour, "olga"))


def test_an_ipv6_client_is_counted_by_its_64_network():
    client = Client(REMOTE_ADDR="2001:db8:1:2:aaaa::1").get("/accounts/login/").wsgi_request
    assert signin_address(client) == "2001:db8:1:2::"
    mapped = Client(REMOTE_ADDR="::ffff:192.0.2.7").get("/accounts/login/").wsgi_request
    assert signin_address(mapped) == "192.0.2.7"


# --- What a lock-out tells ------------------------------------------------------------------


def test_a_lock_out_does_not_tell_whether_the_account_exists(way):
    way.account("sam")
    answers, waits = {}, {}
    for address, username in (("10.0.0.1", "sam"), ("10.0.0.2", "nobody")):
        responses = fail(way, way.client(address), username, LIMIT + 1)
        answers[username] = [(r.status_code, _message(way, r)) for r in responses]
        waits[username] = [int(r.get("Retry-After", 0)) for r in responses]
    assert answers["sam"] == answers["nobody"]
    assert all(abs(a - b) <= 1 for a, b in zip(waits["sam"], waits["nobody"], strict=True))


def _message(way: WayIn, response) -> str:
    if way.name == "token":
        return str(response.json())
    found = re.search(r'role="alert">(.*?)</', response.text, re.S) or re.search(
        r'class="errornote">(.*?)</', response.text, re.S
    )
    return " ".join(found[1].split()) if found else ""


def test_the_token_api_refuses_an_overlong_username_without_counting_it():
    response = APIClient().post(
        "/api/v1/auth/token/", {"username": "x" * 151, "password": "p"}, format="json"
    )
    assert response.status_code == 400 and "username" in response.json()
    assert not AccessAttempt.objects.exists()


# --- Guesses sent in parallel ---------------------------------------------------------------


def test_a_second_sign_in_from_an_address_is_refused_while_the_first_is_checked(way):
    way.account("sam")
    cache.add(SLOT_KEY.format(address="10.0.0.1"), "another request's")
    response = way.sign_in(way.client("10.0.0.1"), "sam")
    assert response.status_code == 429 and response["Retry-After"] == "1"
    assert "Another sign-in from your network is under way" in (
        response.json()["detail"] if way.name == "token" else response.text
    )
    assert not AccessAttempt.objects.exists()  # neither checked nor counted
    assert way.signed_in(way.sign_in(way.client("10.0.0.2"), "sam"))
    cache.delete(SLOT_KEY.format(address="10.0.0.1"))
    assert way.signed_in(way.sign_in(way.client("10.0.0.1"), "sam"))


class SlowMD5Hasher(MD5PasswordHasher):
    """The tests' hasher, as slow as a real one: parallel guesses overlap while checked."""

    def verify(self, password, encoded):
        time.sleep(0.2)
        return super().verify(password, encoded)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("way", WAYS, ids=lambda way: way.name)
def test_parallel_guesses_get_no_more_checks_than_the_limit(live_server, settings, way):
    settings.PASSWORD_HASHERS = ["tests.accounts.test_signin_limits.SlowMD5Hasher"]
    way.account("sam")
    answers: list[int] = []
    locked = []

    def guess_until_locked_out() -> None:
        deadline = time.monotonic() + 30
        with requests.Session() as session:
            session.get(f"{live_server.url}{way.url}")  # the CSRF cookie for the forms
            form = {"username": "sam", "password": "wrong"}
            form["csrfmiddlewaretoken"] = session.cookies.get("csrftoken", "")
            while time.monotonic() < deadline:
                response = session.post(f"{live_server.url}{way.url}", data=form)
                answers.append(response.status_code)
                if "Too many failed sign-ins" in response.text:
                    locked.append(True)
                    return

    threads = [threading.Thread(target=guess_until_locked_out) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(locked) == 6, answers
    # Exactly the limit was checked (the last of them answered with the lock-out).
    assert AccessAttempt.objects.get(username="sam").failures_since_start == LIMIT
    assert len([status for status in answers if status != 429]) == LIMIT - 1, answers


# --- Admins ---------------------------------------------------------------------------------

SELLERS = WAYS[1]
ATTEMPTS = "/admin/axes/accessattempt/"


def test_admins_see_a_locked_out_account_and_unlock_it(admin_client):
    make_user("sam")
    fail(SELLERS, SELLERS.client("10.0.0.2"), "sam", 1)
    fail(SELLERS, SELLERS.client("10.0.0.1"), "sam", LIMIT)
    page = admin_client.get(ATTEMPTS, {"locked": "yes"})
    assert page.status_code == 200
    assert "sam" in page.text and f"{LIMIT} of {LIMIT}: locked out" in page.text
    assert "6 of 10" in page.text  # guesses checked from places sam is not known at
    row = AccessAttempt.objects.filter(username="sam").first()
    response = admin_client.post(
        ATTEMPTS, {"action": "unlock_accounts", "_selected_action": [row.pk]}, follow=True
    )
    assert "Unlocked 1 account(s): 2 row(s) cleared." in response.text
    assert not AccessAttempt.objects.filter(username="sam").exists()
    assert SELLERS.signed_in(SELLERS.sign_in(SELLERS.client("10.0.0.1"), "sam"))


def test_admins_unlock_an_address_that_guessed_across_usernames(admin_client):
    make_user("sam")
    client = SELLERS.client("10.0.0.1")
    for n in range(LIMIT):
        SELLERS.sign_in(client, f"user{n}", "password1")
    locked_out(SELLERS, SELLERS.sign_in(client, "sam"))
    page = admin_client.get(ATTEMPTS, {"locked": "yes"})
    assert page.text.count(f"{LIMIT} of {LIMIT}: locked out") == LIMIT  # each row's address
    row = AccessAttempt.objects.first()
    admin_client.post(ATTEMPTS, {"action": "unlock_addresses", "_selected_action": [row.pk]})
    assert not AccessAttempt.objects.exists()
    assert SELLERS.signed_in(SELLERS.sign_in(client, "sam"))


def test_an_unlocked_list_shows_nothing_locked(admin_client):
    make_user("sam")
    fail(SELLERS, SELLERS.client("10.0.0.1"), "sam", 2)
    assert "sam" not in admin_client.get(ATTEMPTS, {"locked": "yes"}).text
    assert "2 of 5" in admin_client.get(ATTEMPTS, {"locked": "no"}).text


def test_the_reset_command_unlocks_an_account():
    make_user("sam")
    fail(SELLERS, SELLERS.client("10.0.0.1"), "sam", LIMIT)
    call_command("axes_reset_username", "sam", stdout=StringIO())
    assert SELLERS.signed_in(SELLERS.sign_in(SELLERS.client("10.0.0.1"), "sam"))
