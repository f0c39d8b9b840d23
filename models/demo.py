"""The demo petition of the seed page, shipped as data with the project."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

from tortoise.transactions import in_transaction

from . import figures
from .comments import Moderation, store_comment
from .tables import Petition, Signature

DEMO_SLUG = "amazon-stop-facial-recognition"


def demo_data() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("demo_petition.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def demo_signers(data: dict[str, Any]) -> list[tuple[str, str]]:
    """All signers, oldest first: made-up older ones, then the ten the seed page shows."""
    total = data["petition"]["signature_count"]
    newest = [tuple(name.split(" ", 1)) for name in reversed(data["newest_signers_newest_first"])]
    firsts, lasts = data["older_first_names"], data["older_last_names"]
    older = [
        (firsts[i % len(firsts)], lasts[(i * 7) % len(lasts)]) for i in range(total - len(newest))
    ]
    return older + newest


async def load_demo() -> Petition:
    """Create the demo petition unless it is there already; return it either way."""
    existing = await Petition.get_or_none(slug=DEMO_SLUG)
    if existing is not None:
        return existing
    data = demo_data()
    fields = {
        k: v for k, v in data["petition"].items() if k not in {"signature_count", "image_alt"}
    }
    signers = demo_signers(data)
    now = datetime.now(UTC)
    started = now - timedelta(days=30)
    async with in_transaction() as connection:
        petition = await Petition.create(
            **fields,
            signature_count=len(signers),
            last_signature_number=len(signers),
            using_db=connection,
        )
        await Petition.filter(id=petition.id).using_db(connection).update(created_at=started)
        step = (now - started) / (len(signers) + 1)
        signatures = [
            Signature(
                petition_id=petition.id,
                number=number,
                first_name=first,
                last_name=last,
                email=f"demo-signer-{number}@example.org",
                email_canonical=f"demo-signer-{number}@example.org",
                email_domain="example.org",
                created_at=started + step * number,
            )
            for number, (first, last) in enumerate(signers, start=1)
        ]
        await Signature.bulk_create(signatures, using_db=connection)
        await figures.move(connection, petition.id, figures.Tally.of(signatures))
        signed_at = [signature.created_at for signature in signatures]
        await figures.reach_as_signed(connection, petition, signed_at)
        # Judged by the spam filter as any new comment is: the seed's second is spam.
        for index, comment in enumerate(data["comments"], start=1):
            await store_comment(
                connection,
                petition,
                comment["author_name"],
                f"demo-commenter-{index}@example.org",
                comment["body"],
                Moderation.FILTER,
                created_at=started + timedelta(days=index),
            )
    return await Petition.get(id=petition.id)
