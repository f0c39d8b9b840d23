"""Factories with overrides: make petitions and signatures through the public API."""

from __future__ import annotations

import itertools
from typing import Any

CREATE_PETITION = """
mutation Create($input: CreatePetitionInput!) {
  createPetition(input: $input) {
    petition { id slug status signatureCount commentCount }
    errors { field message code }
  }
}
"""

SIGN = """
mutation Sign($input: SignPetitionInput!) {
  signPetition(input: $input) {
    signature { id name country comment createdAt }
    petition { id signatureCount }
    errors { field message code }
  }
}
"""

ADD_COMMENT = """
mutation Comment($input: AddCommentInput!) {
  addComment(input: $input) {
    comment { id authorName body createdAt }
    petition { id commentCount }
    errors { field message code }
  }
}
"""

_serial = itertools.count(1)


def petition_input(**overrides: Any) -> dict[str, Any]:
    n = next(_serial)
    return {
        "title": f"Save the library number {n}",
        "target": "The city council",
        "goal": "Keep the library open on Sundays.",
        "body": "The library is the heart of the town.\n\nKeep it open.",
        "signatureGoal": 1000,
        **overrides,
    }


async def create_petition(gql: Any, **overrides: Any) -> dict[str, Any]:
    """Create a petition as admin; returns the `petition` object (id, slug, status...)."""
    result = await gql(CREATE_PETITION, {"input": petition_input(**overrides)}, admin=True)
    payload = result["data"]["createPetition"]
    assert payload["errors"] == [], payload["errors"]
    petition: dict[str, Any] = payload["petition"]
    return petition


def signer(petition_id: str, n: int, **overrides: Any) -> dict[str, Any]:
    return {
        "petitionId": petition_id,
        "firstName": f"Signer{n}",
        "lastName": "Example",
        "email": f"signer{n}@example.org",
        **overrides,
    }


async def sign(gql: Any, petition_id: str, n: int, **overrides: Any) -> dict[str, Any]:
    """Sign as signer `n`; returns the whole `signPetition` payload."""
    result = await gql(SIGN, {"input": signer(petition_id, n, **overrides)})
    assert "errors" not in result, result
    payload: dict[str, Any] = result["data"]["signPetition"]
    return payload


async def comment(gql: Any, petition_id: str, **overrides: Any) -> dict[str, Any]:
    """Comment on a petition; returns the whole `addComment` payload."""
    result = await gql(
        ADD_COMMENT,
        {
            "input": {
                "petitionId": petition_id,
                "authorName": "Grace Hopper",
                "email": "grace@example.org",
                "body": "Count me in.",
                **overrides,
            }
        },
    )
    assert "errors" not in result, result
    payload: dict[str, Any] = result["data"]["addComment"]
    assert payload["errors"] == [], payload["errors"]
    return payload
