"""`/confirm/<token>`: the page a confirmation email links to.

Mail scanners and link previewers follow links, so the GET only shows a button; the button's
POST confirms (`models.confirm_signature`, as the `confirmSignature` mutation does). The pages
are plain HTML with no script, behind a Content-Security-Policy that allows nothing else."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse

import models
from models.tokens import token_hash

_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
_STYLE = (
    "body{font:18px/1.5 system-ui,sans-serif;max-width:36em;margin:3em auto;padding:0 1em}"
    "button{font:inherit;padding:.6em 1.4em;border:0;border-radius:4px;background:#1a5fb4;"
    "color:#fff;cursor:pointer}button:focus{outline:3px solid #f5c211}"
)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )
    headers = {
        "Content-Security-Policy": _CSP,
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",  # the token is in the URL
        "X-Content-Type-Options": "nosniff",
    }
    return HTMLResponse(html, status_code=status, headers=headers)


def _unknown() -> HTMLResponse:
    return _page(
        "This link does not work",
        "<p>The confirmation link is unknown or has expired. Sign the petition again to be "
        "sent a new one.</p>",
        status=404,
    )


async def confirm_page(request: Request) -> HTMLResponse:
    token = request.path_params["token"]
    ttl = request.state.policy.confirm_ttl
    if request.method == "GET":  # changes nothing: shows the button
        found = await models.Signature.get_or_none(token_hash=token_hash(token)).select_related(
            "petition"
        )
        if found is None or found.created_at + ttl < datetime.now(UTC):
            return _unknown()
        title = escape(found.petition.title)
        return _page(
            "Confirm your signature",
            f"<p>Press the button to confirm your signature on “{title}”.</p>"
            f'<form method="post" action="/confirm/{escape(token)}">'
            '<button type="submit">Confirm my signature</button></form>',
        )
    try:
        signed = await models.confirm_signature(token, ttl=ttl, publisher=request.state.hub)
    except models.Refused as refused:
        if refused.problems[0].code is models.RefusalCode.PETITION_CLOSED:
            return _page("This petition is closed", "<p>It takes no more signatures.</p>", 409)
        return _unknown()
    return _page(
        "Thank you: your signature counts",
        f"<p>You have signed “{escape(signed.petition.title)}”.</p>",
    )
