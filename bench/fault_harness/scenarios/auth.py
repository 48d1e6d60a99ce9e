"""An attack rather than a fault: guessing one account's password on every way in."""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass

from ..harness import Harness, Result
from ..services import PYTHON, ROOT

GUESSES = 200  # wrong passwords per way in
ATTACKERS = 4  # sent this many at a time
# The bar: wrong passwords answered as checked (not 429) per way in.
GUESSED_BAR = 10
BUSY_PAUSE_S = 0.05  # before sending again a guess refused as "another sign-in is under way"
PASSWORD = "the-right-password-1"


@dataclass(frozen=True)
class WayIn:
    name: str
    path: str
    staff: bool  # whose account signs in here

    def send(self, h: Harness, session, username: str, password: str):
        url = f"{h.url}{self.path}"
        if self.name == "token":
            return session.post(url, json={"username": username, "password": password}, timeout=60)
        if "csrftoken" not in session.cookies:
            session.get(url, timeout=60)
        form = {"username": username, "password": password,
                "csrfmiddlewaretoken": session.cookies["csrftoken"]}  # fmt: skip
        if self.name == "admin":
            form["next"] = "/admin/"
        return session.post(
            url, data=form, headers={"Referer": url}, allow_redirects=False, timeout=60
        )

    def signed_in(self, response) -> bool:
        if self.name == "token":
            return response.status_code == 200 and "token" in response.json()
        return response.status_code == 302 and "login" not in response.headers["Location"]

    def checked_wrong(self, response) -> bool:
        """The answer to a wrong password that was checked: the form again, or a 400."""
        if self.name == "token":
            return response.status_code == 400
        return response.status_code == 200 and "correct username and password" in response.text


WAYS = (
    WayIn("token", "/api/v1/auth/token/", staff=False),
    WayIn("seller", "/accounts/login/", staff=False),
    WayIn("admin", "/admin/login/", staff=True),
)


def logins(h: Harness) -> Result:
    """``GUESSES`` wrong passwords for one real account on each way in (the token API, the
    sellers' sign-in, the admin's), ``ATTACKERS`` at a time from one address. Its figure,
    ``logins_guessed``: per way in, the guesses answered otherwise than ``429`` (their
    password was checked and found wrong), at most ``GUESSED_BAR``. Then the right password
    must be refused while locked out, and work once ``manage.py axes_reset`` cleared it.

    Every sign-in here comes from 127.0.0.1, whose lock-out would also refuse the other
    ways in and the scenarios that sign in to the admin: each way in ends unlocked."""
    result = Result("logins")
    guessed: dict[str, int] = {}
    try:
        for way in WAYS:
            username = _account(h, way)
            answers, seconds = _attack(h, way, username)
            guessed[way.name] = _judge(h, result, way, username, answers, seconds)
            _after_the_attack(h, result, way, username)
    finally:
        _unlock(h, result)
    result.figures["logins_guessed"] = guessed
    result.figures["logins_guessed_max"] = max(guessed.values(), default=None)
    return result


def _account(h: Harness, way: WayIn) -> str:
    from django.contrib.auth import get_user_model

    username = f"brute-{way.name}"
    get_user_model().objects.create_user(username, password=PASSWORD, is_staff=way.staff)
    return username


def _attack(h: Harness, way: WayIn, username: str) -> tuple[Counter, float]:
    """The answers to ``GUESSES`` wrong passwords, each sent again while the answer is
    only "another sign-in from your network is under way" (it was not tried), and the
    seconds it took."""
    import requests

    passwords = iter(f"guess-{n}" for n in range(GUESSES))
    answers: Counter = Counter()
    lock = threading.Lock()

    def attacker() -> None:
        session = requests.Session()
        while True:
            with lock:
                password = next(passwords, None)
            if password is None:
                return
            while (kind := _kind(h, way, session, username, password)) == "busy":
                with lock:
                    answers[kind] += 1
                time.sleep(BUSY_PAUSE_S)
            with lock:
                answers[kind] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=attacker) for _ in range(ATTACKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers, round(time.monotonic() - started, 1)


def _kind(h: Harness, way: WayIn, session, username: str, password: str) -> str:
    """What an answer was: checked (and wrong), locked (out), busy, signed in, 5xx."""
    import requests

    from accounts.limits import BUSY

    try:
        response = way.send(h, session, username, password)
    except requests.RequestException:
        return "5xx"  # no answer at all counts as a server failure
    if response.status_code >= 500:
        return "5xx"
    if response.status_code == 429:
        return "busy" if BUSY in response.text else "locked"
    if way.signed_in(response):
        return "signed in"
    if way.checked_wrong(response):
        return "checked"
    return f"HTTP {response.status_code}"


def _judge(
    h: Harness, result: Result, way: WayIn, username: str, answers: Counter, seconds: float
) -> int:
    """The guesses answered otherwise than 429; the problems the answers show."""
    from axes.models import AccessAttempt

    guessed = sum(n for kind, n in answers.items() if kind not in ("busy", "locked"))
    counted = h.db(lambda: sum(
        AccessAttempt.objects.filter(username=username).values_list(
            "failures_since_start", flat=True
        )
    ))  # fmt: skip
    result.notes.append(
        f"{way.name}: {GUESSES} wrong passwords in {sum(answers.values())} requests, "
        f"{seconds} s: {dict(answers)}; failures counted: {counted}"
    )
    result.http_5xx += answers["5xx"]
    if answers["signed in"]:
        result.problems.append(f"{way.name}: a wrong password signed in")
    odd = {k: n for k, n in answers.items() if k.startswith("HTTP")}
    if odd:
        result.problems.append(f"{way.name}: unexpected answers {odd}")
    if answers["5xx"]:
        result.problems.append(f"{way.name}: {answers['5xx']} answers >= 500 or none")
    if guessed > GUESSED_BAR:
        result.problems.append(f"{way.name}: {guessed} guesses checked, over {GUESSED_BAR}")
    return guessed


def _after_the_attack(h: Harness, result: Result, way: WayIn, username: str) -> None:
    """The right password: refused while locked out, accepted once the lock-out is cleared."""
    import requests

    locked = way.send(h, requests.Session(), username, PASSWORD)
    if locked.status_code != 429:
        result.problems.append(
            f"{way.name}: the right password during the lock-out got {locked.status_code}, not 429"
        )
    _unlock(h, result)
    right = way.send(h, requests.Session(), username, PASSWORD)
    if not way.signed_in(right):
        result.problems.append(
            f"{way.name}: the right password after axes_reset got {right.status_code}"
        )
    result.notes.append(
        f"{way.name}: the right password: {locked.status_code} while locked out, "
        f"{right.status_code} after axes_reset"
    )


def _unlock(h: Harness, result: Result) -> None:
    """``manage.py axes_reset``: every failure forgotten, every lock-out lifted."""
    reset = subprocess.run(
        [PYTHON, "manage.py", "axes_reset"], cwd=ROOT, env=h.env, capture_output=True, text=True
    )
    if reset.returncode:
        result.problems.append(f"axes_reset failed: {reset.stderr.strip()[-200:]}")
