"""Per-client request rate limits: a token bucket per client in Redis, shared by every web process.

A client may send SCREENREEL_RATE_LIMIT_PER_S requests a second on average (25) with bursts of up to
SCREENREEL_RATE_LIMIT_BURST (100); ``Client.rate_limit_per_s`` and ``rate_limit_burst`` override both
per client (admin). The bucket's state lives in one Redis hash per client and is updated by one Lua
script on Redis' own clock, so any number of web processes on any number of machines share it
exactly. Over the limit a request gets 429 ``rate_limited`` with ``Retry-After``; every limited
response carries ``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset``.

While Redis is unreachable requests are let through (with a warning at most once a minute): a
limiter must not take the API down with it.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from jobs.models import Client

log = logging.getLogger(__name__)

KEY_PREFIX = "screenreel:ratelimit:"

# KEYS[1] the bucket; ARGV rate per second, burst. Returns {allowed 0/1, tokens left as a string}.
_TAKE = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil then tokens, at = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local allowed = 0
if tokens >= 1 then tokens, allowed = tokens - 1, 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
"""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # until the bucket is full again
    retry_after_s: int  # until one request is allowed (0 when allowed)

    def headers(self) -> dict[str, str]:
        out = {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
               "RateLimit-Reset": str(self.reset_s)}
        if not self.allowed:
            out["Retry-After"] = str(self.retry_after_s)
        return out


_client: tuple[tuple[int, str], Any] | None = None
_warned_at = 0.0


def _script() -> Any:
    global _client
    owner = (os.getpid(), settings.REDIS_URL)
    if _client is None or _client[0] != owner:
        connection = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)
        _client = (owner, connection.register_script(_TAKE))
    return _client[1]


def limits_for(client: Client) -> tuple[float, int]:
    rate = client.rate_limit_per_s or settings.SCREENREEL_RATE_LIMIT_PER_S
    burst = client.rate_limit_burst or settings.SCREENREEL_RATE_LIMIT_BURST
    return float(rate), max(int(burst), 1)


def request_take(client: Client) -> Verdict | None:
    """Take one request from ``client``'s bucket; None when Redis could not be asked (the request passes)."""
    rate, burst = limits_for(client)
    return _take(KEY_PREFIX + client.pk, rate, burst)


def _take(key: str, rate: float, burst: int) -> Verdict | None:
    global _warned_at
    try:
        allowed, left = _script()(keys=[key], args=[rate, burst])
    except redis.RedisError:
        if time.monotonic() - _warned_at > 60:
            _warned_at = time.monotonic()
            log.warning("rate limits are not enforced: Redis is unreachable")
        return None
    tokens = float(left)
    return Verdict(allowed=bool(allowed), limit=burst, remaining=math.floor(tokens),
                   reset_s=math.ceil((burst - tokens) / rate),
                   retry_after_s=0 if allowed else max(1, math.ceil((1 - tokens) / rate)))


def refusal(client: Client, verdict: Verdict) -> Exception:
    # Imported here: rest_framework.views loads this module (DEFAULT_THROTTLE_CLASSES) while jobs.lib.errors,
    # which imports rest_framework.views, is still being imported.
    from jobs.lib.errors import DomainError

    rate, burst = limits_for(client)
    return DomainError(f"Too many requests: this client may send {rate:g} a second, with bursts of {burst}. "
                       f"Retry in {verdict.retry_after_s} s.", code="rate_limited", status_code=429,
                       details={"retry_after_s": verdict.retry_after_s, "limit_per_s": rate, "burst": burst})


def request_admit(request: HttpRequest, client: Client) -> None:
    """For views outside DRF (the event stream): take from the bucket, or raise the 429."""
    verdict = request_take(client)
    remember(request, verdict)
    if verdict is not None and not verdict.allowed:
        raise refusal(client, verdict)


def remember(request: HttpRequest, verdict: Verdict | None) -> None:
    """Keep the verdict on the request, for RateLimitHeadersMiddleware to put in the response."""
    request.screenreel_ratelimit = verdict  # type: ignore[attr-defined]


class ClientRateThrottle(BaseThrottle):
    """DRF's throttle for every API view: the authenticated client's bucket."""

    def allow_request(self, request: Request, view: Any) -> bool:
        client = getattr(request.user, "client", None)
        if not isinstance(client, Client):
            return True  # unauthenticated requests are refused by the permission check, not counted here
        self.verdict = request_take(client)
        remember(request._request, self.verdict)
        if self.verdict is not None and not self.verdict.allowed:
            raise refusal(client, self.verdict)
        return True

    def wait(self) -> float | None:  # never asked: a refusal is raised with its own message and details
        return None


class TokenGuard:
    """Wrong tokens from one address on the URLs whose token is the credential (a deploy hook, a share). Each miss
    takes from the address's bucket; once it is empty a miss answers 429 ``rate_limited`` (with Retry-After)
    instead of 404, so guessing is slowed to one try every SCREENREEL_WRONG_TOKEN_EVERY_S. A right token is never
    refused by it, whoever shares the address (a hook is limited by its client's own rate). The address is
    REMOTE_ADDR, as for the admin's lockouts."""

    def __init__(self, request: HttpRequest) -> None:
        self.request = request
        self.key = f"{KEY_PREFIX}wrong-token:{request.META.get('REMOTE_ADDR', '')}"
        self.burst = int(settings.SCREENREEL_WRONG_TOKEN_BURST)
        self.rate = 1 / int(settings.SCREENREEL_WRONG_TOKEN_EVERY_S)

    def missed(self, exc: Exception) -> Exception:
        """Count one wrong token; returns what to raise: ``exc``, or the 429 once the address has no try left."""
        verdict = _take(self.key, self.rate, self.burst)
        if verdict is None or verdict.allowed:
            return exc
        from jobs.lib.errors import DomainError

        remember(self.request, verdict)  # Retry-After on the 429
        return DomainError(f"Too many wrong URLs from this address. Retry in {verdict.retry_after_s} s.",
                           code="rate_limited", status_code=429, details={"retry_after_s": verdict.retry_after_s})
