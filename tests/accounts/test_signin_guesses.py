"""Guesses at one account from many addresses cannot lock its owner out: at most
``SIGNIN_ACCOUNT_GUESSES`` (10) passwords are checked per username per 15 minutes from the
places it never signed in from, all of them together and however many at once, while its
known addresses and browsers (a sign-in with the right password) sign in as usual."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from axes.models import AccessAttempt
from django.core.cache import cache
from django.db.models import Sum

from accounts.known import KNOWN_DEVICE_COOKIE
from accounts.models import KnownSignIn
from tests.accounts.test_signin_limits import WAYS, SlowMD5Hasher, WayIn  # noqa: F401 (the hasher's path)
from tests.support.factories import make_user

pytestmark = pytest.mark.django_db

BUDGET = 10  # the default of SIGNIN_ACCOUNT_GUESSES
TOKEN, SELLERS, ADMIN = WAYS


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()  # the budgets and the sign-in slots: the cache outlives a test
    yield
    cache.clear()


def test_the_budget_is_the_production_default(settings):
    assert settings.SIGNIN_ACCOUNT_GUESSES == BUDGET
    assert settings.SIGNIN_LOCKOUT_SECONDS == 15 * 60


def too_many_guesses(way: WayIn, response) -> bool:
    if response.status_code != 429:
        return False
    text = response.json()["detail"] if way.name == "token" else response.text
    return int(response["Retry-After"]) > 0 and "Too many sign-ins were tried for this" in text


def stranger(n: int) -> str:
    return f"198.51.{n // 200}.{n % 200 + 1}"


def guess_from_everywhere(username: str, times: int) -> list[tuple[WayIn, object]]:
    """``times`` wrong passwords from as many addresses, taking turns on the three ways in."""
    answers = []
    for n in range(times):
        way = WAYS[n % 3]
        answers.append((way, way.sign_in(way.client(stranger(n)), username, f"guess-{n}")))
    return answers


def test_a_hundred_wrong_passwords_from_elsewhere_leave_the_moderator_signing_in_at_her_desk():
    make_user("mona", staff=True)
    desk = "10.0.0.7"
    assert ADMIN.signed_in(ADMIN.sign_in(ADMIN.client(desk), "mona"))  # her address, known

    answers = guess_from_everywhere("mona", 100)

    # Ten checks in all: her own first sign-in at the desk (not known yet) was one.
    checked = [r for way, r in answers if way.refused_as_wrong(r)]
    refused = [r for way, r in answers if too_many_guesses(way, r)]
    assert len(checked) == BUDGET - 1 and len(refused) == 100 - BUDGET + 1
    assert AccessAttempt.objects.filter(username="mona").aggregate(
        n=Sum("failures_since_start")
    ) == {"n": BUDGET - 1}
    # Her own address, in a fresh browser, on every way in: signed in.
    for way in (ADMIN, TOKEN):
        assert way.signed_in(way.sign_in(way.client(desk), "mona")), way.name
    # An address she never used is refused, even with the right password, unchecked.
    elsewhere = ADMIN.sign_in(ADMIN.client("203.0.113.9"), "mona")
    assert too_many_guesses(ADMIN, elsewhere)


def test_her_browser_signs_in_from_a_new_network(settings):
    make_user("mona", staff=True)
    browser = ADMIN.client("10.0.0.7")
    assert ADMIN.signed_in(ADMIN.sign_in(browser, "mona"))
    cookie = browser.cookies[KNOWN_DEVICE_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    guess_from_everywhere("mona", BUDGET + 5)

    laptop = ADMIN.client("192.0.2.44")  # the same browser, signed out, on another network
    laptop.cookies[KNOWN_DEVICE_COOKIE] = cookie.value
    assert ADMIN.signed_in(ADMIN.sign_in(laptop, "mona"))
    # The address is known from now on too.
    assert KnownSignIn.objects.filter(user__username="mona", address="192.0.2.44").exists()


def test_a_forged_or_anothers_device_cookie_is_no_more_than_a_stranger():
    make_user("mona", staff=True)
    make_user("sam")
    own = SELLERS.client("10.0.0.1")
    assert SELLERS.signed_in(SELLERS.sign_in(own, "sam"))  # sam's browser, sam's cookie
    guess_from_everywhere("mona", BUDGET)

    for value in (own.cookies[KNOWN_DEVICE_COOKIE].value, "mona:forged:signature"):
        client = ADMIN.client("203.0.113.5")
        client.cookies[KNOWN_DEVICE_COOKIE] = value
        assert too_many_guesses(ADMIN, ADMIN.sign_in(client, "mona"))


def test_the_budget_does_not_tell_whether_the_account_exists():
    make_user("sam")
    answers = {}
    for username in ("sam", "nobody"):
        answers[username] = [
            (r.status_code, r.get("Content-Type")) for _, r in guess_from_everywhere(username, 14)
        ]
    assert answers["sam"] == answers["nobody"]
    assert [status for status, _ in answers["sam"]].count(429) == 14 - BUDGET


def test_a_checked_guess_frees_its_slot_when_the_window_has_passed(settings):
    settings.SIGNIN_LOCKOUT_SECONDS = 1
    settings.SIGNIN_ACCOUNT_GUESSES = 2
    make_user("sam")
    answers = guess_from_everywhere("sam", 3)
    assert too_many_guesses(*answers[2])
    assert answers[2][1]["Retry-After"] == "1"
    time.sleep(1.1)
    assert TOKEN.signed_in(TOKEN.sign_in(TOKEN.client("203.0.113.1"), "sam"))


def test_an_admin_unlocking_the_account_makes_its_budget_whole(admin_client):
    make_user("sam")
    guess_from_everywhere("sam", BUDGET + 1)
    row = AccessAttempt.objects.filter(username="sam").first()
    admin_client.post(
        "/admin/axes/accessattempt/", {"action": "unlock_accounts", "_selected_action": [row.pk]}
    )
    assert SELLERS.signed_in(SELLERS.sign_in(SELLERS.client("203.0.113.1"), "sam"))


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_twelve_guesses_at_once_from_twelve_addresses_get_at_most_ten_checks(live_server, settings):
    # Each password check takes a while, as a real hash does: the twelve overlap.
    settings.PASSWORD_HASHERS = ["tests.accounts.test_signin_limits.SlowMD5Hasher"]
    settings.REST_FRAMEWORK = settings.REST_FRAMEWORK | {"NUM_PROXIES": 1}
    make_user("mona", staff=True)
    answers: list[int] = []
    start = threading.Barrier(12)

    def guess(n: int) -> None:
        start.wait()
        response = requests.post(
            f"{live_server.url}{TOKEN.url}",
            json={"username": "mona", "password": f"guess-{n}"},
            headers={"X-Forwarded-For": stranger(n)},
            timeout=60,
        )
        answers.append(response.status_code)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(answers) == [400] * BUDGET + [429] * 2, answers
    assert AccessAttempt.objects.aggregate(n=Sum("failures_since_start")) == {"n": BUDGET}
