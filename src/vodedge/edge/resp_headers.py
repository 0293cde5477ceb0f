"""set_resp_header on the way out: a domain's headers on every response, CORS, preflights."""

from __future__ import annotations

from aiohttp import web
from multidict import CIMultiDict

from vodedge.config import Domain
from vodedge.config.headers import ALLOW_ORIGIN
from vodedge.edge.refusal import Refusal

# The domain a request was resolved to, for the response's headers.
DOMAIN: web.RequestKey[Domain] = web.RequestKey("domain", Domain)


def preflight(domain: Domain, request: web.BaseRequest) -> Refusal | None:
    """The answer to an OPTIONS request on a domain with CORS; None without CORS."""
    cors = domain.response_headers.cors
    if cors is None:
        return None
    origin = request.headers.get("Origin")
    if origin is None or "Access-Control-Request-Method" not in request.headers:
        return Refusal.answer(204, {"Allow": cors.methods})
    if cors.allow_origin(origin) is None:
        message = "this origin may not fetch from this domain"
        return Refusal(403, "cors_denied", message, domain=domain.name)
    headers = {
        "Access-Control-Allow-Methods": cors.methods,
        "Access-Control-Allow-Headers": cors.request_headers,
        "Access-Control-Max-Age": cors.max_age,
    }
    return Refusal.answer(204, headers)


def apply(request: web.BaseRequest, headers: CIMultiDict[str]) -> None:
    """Add, change or remove the domain's configured headers in a response's `headers`."""
    domain = request.get(DOMAIN)
    if domain is None:
        return
    configured = domain.response_headers
    cors = configured.cors
    for rule in configured.rules:
        if cors is not None and rule.name.lower().startswith("access-control-"):
            continue  # the CORS answer below is made per request
        if rule.operation == "delete":
            headers.popall(rule.name, None)
        elif rule.operation == "modify":
            headers[rule.name] = rule.value
        else:
            headers.add(rule.name, rule.value)
    if cors is None:
        return
    if cors.check_origin:
        headers.add("Vary", "Origin")
    allowed = cors.allow_origin(request.headers.get("Origin"))
    if allowed is None:
        return
    headers[ALLOW_ORIGIN] = allowed
    headers["Access-Control-Expose-Headers"] = cors.exposed
