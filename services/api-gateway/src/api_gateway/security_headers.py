"""Security headers on every answer: a Content-Security-Policy under which the console runs
(its scripts, styles, images and requests from this origin only, nothing inline, no framing),
plus nosniff, no framing for older browsers, and referrers kept within this origin.

A plain ASGI middleware that adds to the start of the answer only, so a live event stream
passes through unbuffered. A header the answer sets itself is left as it is.

FastAPI's documentation pages (/docs, /redoc) load their viewer from a CDN and start it with
inline script and style; they get a policy that allows that and nothing more. They show the
OpenAPI document, never anyone's data.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONSOLE_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self'",  # images are the gateway's own /media/{id}
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
CDN = "https://cdn.jsdelivr.net"
DOCS_POLICY = {
    **CONSOLE_POLICY,
    "script-src": f"'self' 'unsafe-inline' {CDN}",
    "style-src": f"'self' 'unsafe-inline' {CDN} https://fonts.googleapis.com",
    "font-src": "https://fonts.gstatic.com",
    "img-src": "'self' data: https://fastapi.tiangolo.com",
    "worker-src": "blob:",
}
DOCS_PATHS = frozenset({"/docs", "/redoc"})  # FastAPI's docs_url and redoc_url


def _headers(policy: dict[str, str]) -> list[tuple[bytes, bytes]]:
    csp = "; ".join(f"{directive} {sources}" for directive, sources in policy.items())
    return [
        (b"content-security-policy", csp.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        # Not no-referrer: under it a browser's form post says `Origin: null`, and the sign-in
        # refuses a post whose origin is not this console.
        (b"referrer-policy", b"same-origin"),
    ]


CONSOLE_HEADERS = _headers(CONSOLE_POLICY)
DOCS_HEADERS = _headers(DOCS_POLICY)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        added = DOCS_HEADERS if scope["path"] in DOCS_PATHS else CONSOLE_HEADERS

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                own = list(message.get("headers", ()))
                present = {name.lower() for name, _ in own}
                message = {**message, "headers": own + [h for h in added if h[0] not in present]}
            await send(message)

        await self.app(scope, receive, with_headers)
