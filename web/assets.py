"""The pages' static files (web/static, and web/vendor's released third-party files under
/static/vendor/), read once into memory with their gzipped forms and ETags.

They are loaded by pages of other origins too (the widget's modules), so they are served with
`Cross-Origin-Resource-Policy: cross-origin`; CORS is the app's CORS middleware's
(PETITIONS_ALLOWED_ORIGINS). Their names carry no hash, so they are kept five minutes."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

HERE = Path(__file__).parent
MAX_AGE = 300

_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    etag: str
    content_type: str


def _asset(path: Path) -> Asset:
    body = path.read_bytes()
    digest = hashlib.blake2b(body, digest_size=8).hexdigest()
    return Asset(
        body=body,
        gzipped=gzip.compress(body, compresslevel=9, mtime=0),
        etag=f'"{digest}"',
        content_type=_TYPES.get(path.suffix, "application/octet-stream"),
    )


def load_assets() -> dict[str, Asset]:
    """Every served file by its path under /static/."""
    assets: dict[str, Asset] = {}
    for folder, prefix in ((HERE / "static", ""), (HERE / "vendor", "vendor/")):
        for path in sorted(folder.glob("*")):
            if path.is_file():
                assets[prefix + path.name] = _asset(path)
    return assets


def asset_response(request: Request, asset: Asset) -> Response:
    """The file, gzipped when the client takes it, or 304 when its copy is current."""
    gzipped = "gzip" in request.headers.get("accept-encoding", "")
    etag = asset.etag[:-1] + '-gz"' if gzipped else asset.etag
    headers = {
        "Cache-Control": f"public, max-age={MAX_AGE}",
        "ETag": etag,
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    body = asset.gzipped if gzipped else asset.body
    return Response(body, headers=headers, media_type=asset.content_type)
