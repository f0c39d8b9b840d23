"""`GET /petitions/<slug>/signatures.csv|json`: a petition's valid signatures for its admins,
streamed as they are read (`models.exports`), whatever the petition's size.

The body is read from the database after this handler has returned, while the response is
sent: `DatabaseContext` wraps the whole ASGI call, so the Tortoise context is still current."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

import models
from models.exports import chunks

MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}
_YES = {"1", "true", "yes", "on"}


async def signatures_export(request: Request) -> Response:
    """The route `/petitions/{slug}/signatures.{format}`."""
    fmt = request.path_params["format"]
    if fmt not in MEDIA_TYPES:
        return JSONResponse({"error": "Exports are .csv or .json."}, status_code=404)
    role = await request.state.roles.role_of(request.headers.get("authorization"))
    if role is not models.TokenRole.ADMIN:
        return JSONResponse(
            {"error": "An admin bearer token is required."},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    slug = request.path_params["slug"]
    petition = await models.find_petition(admin=True, slug=slug)
    if petition is None:
        return JSONResponse({"error": "No petition has that slug."}, status_code=404)
    emails = request.query_params.get("emails", "").strip().lower() in _YES
    return StreamingResponse(
        chunks(fmt, petition.id, emails=emails),
        media_type=MEDIA_TYPES[fmt],
        headers={
            "Content-Disposition": f'attachment; filename="{petition.slug}-signatures.{fmt}"',
            "Cache-Control": "no-store",
        },
    )
