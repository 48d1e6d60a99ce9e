"""Typed readers for settings from the environment; a bad value stops start-up loudly."""

from __future__ import annotations

import ipaddress
import os
import re

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_choice(name: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (the first is the default)."""
    value = os.environ.get(name, choices[0]).strip()
    if value not in choices:
        named = ", ".join(choice for choice in choices if choice)
        raise ImproperlyConfigured(f"{name} must be one of {named}, not {value!r}")
    return value


def env_int(name: str, default: int, *, low: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None
    if low is not None and number < low:
        raise ImproperlyConfigured(f"{name} must be at least {low}, not {number}")
    return number


def env_float(name: str, default: float, *, low: float, high: float) -> float:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None
    if not low <= number <= high:
        raise ImproperlyConfigured(f"{name} must be between {low} and {high}, not {number}")
    return number


def env_optional_float(name: str, *, low: float, high: float) -> float | None:
    """A number, or None when the variable is unset or empty (the feature is off)."""
    if not os.environ.get(name, "").strip():
        return None
    return env_float(name, 0.0, low=low, high=high)


_RATE = re.compile(r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)")


def env_rate(name: str, default: str) -> str:
    """A request rate as the throttles read it: ``number/second|minute|hour|day``."""
    value = os.environ.get(name, default).strip()
    if not _RATE.fullmatch(value):
        raise ImproperlyConfigured(
            f"{name} must be a rate such as 60/min (per second, min, hour or day), not {value!r}"
        )
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_networks(name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Comma-separated addresses or networks (``10.0.0.0/8,::1``); none when unset."""
    networks = []
    for item in env_list(name, []):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} must list addresses or networks (10.0.0.0/8), not {item!r}"
            ) from None
    return networks
