"""Log lines: JSON objects one per line with PETITIONS_LOG_FORMAT=json, and no email address in
any of them, whatever the format."""

from __future__ import annotations

import json
import logging
import sys

import httpx
import pytest

from server import BadSetting, Settings
from serving.logs import JsonLines, TextLines, scrub
from tests.processes import server_process

SIGN = """
mutation Sign($input: SignPetitionInput!) {
  signPetition(input: $input) { signature { name } errors { code } }
}
"""
PETITION_ID = """query { petition(slug: "amazon-stop-facial-recognition") { id } }"""


def record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("no signer ada.lovelace+x@example.org here")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord(
        "petitions.test", logging.WARNING, __file__, 1, message, args, exc_info
    )


def test_every_address_is_scrubbed_however_it_is_written():
    text = (
        'signed: ada@example.org, "John.Smith+tag@mail.example.co.uk"; '
        "GET /graphql?variables=%7B%22email%22%3A%22grace%40example.org%22%7D"
    )

    assert scrub(text) == (
        'signed: [email], "[email]"; GET /graphql?variables=%7B%22email%22%3A%[email]%22%7D'
    )
    assert scrub("no address @ all, a@b, x@localhost") == "no address @ all, a@b, x@localhost"


def test_json_lines_are_one_object_per_line_without_emails():
    line = JsonLines().format(record("a\nmultiline %s", "bob@example.org", exc=True))

    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["level"] == "WARNING"
    assert parsed["logger"] == "petitions.test"
    assert parsed["message"] == "a\nmultiline [email]"
    assert "ValueError: no signer [email] here" in parsed["exception"]
    assert parsed["time"].endswith("+00:00")
    assert "@example.org" not in line


def test_text_lines_are_scrubbed_too():
    line = TextLines().format(record("from %s", "bob@example.org", exc=True))

    assert line.startswith("WARNING petitions.test: from [email]")
    assert "@example.org" not in line


def test_the_log_format_is_a_setting():
    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({"PETITIONS_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(BadSetting, match="PETITIONS_LOG_FORMAT must be one of json, text"):
        Settings.from_env({"PETITIONS_LOG_FORMAT": "xml"})


async def test_a_served_process_logs_json_lines_without_emails(tmp_path):
    # given a server logging JSON lines, with uvicorn's access log on
    env = {
        "PETITIONS_DATABASE_URL": f"sqlite://{tmp_path / 'logs.sqlite3'}",
        "PETITIONS_BROADCAST_URL": "memory://",
        "PETITIONS_LOG_FORMAT": "json",
        "PETITIONS_ACCESS_LOG": "true",
    }
    async with server_process(env, "--demo") as server:
        # when a signer signs, by POST and by a GET that carries the email in its URL
        async with httpx.AsyncClient(base_url=server.url) as client:
            found = await client.post("/graphql", json={"query": PETITION_ID})
            petition_id = found.json()["data"]["petition"]["id"]
            signer = {
                "petitionId": petition_id,
                "firstName": "Ada",
                "lastName": "Lovelace",
                "email": "ada.lovelace@example.org",
            }
            signed = await client.post(
                "/graphql", json={"query": SIGN, "variables": {"input": signer}}
            )
            await client.get(
                "/graphql",
                params={"query": SIGN, "variables": json.dumps({"input": signer})},
            )
        await server.stop()
        output = server.output()

    # then every line is a JSON object, the access log is among them, and no email is
    assert signed.json()["data"]["signPetition"]["errors"] == []
    lines = [line for line in output.splitlines() if line.strip()]
    objects = [json.loads(line) for line in lines]
    assert {"time", "level", "logger", "message"} <= set(objects[0])
    assert any(o["logger"] == "uvicorn.access" and "/graphql" in o["message"] for o in objects)
    assert any("[email]" in o["message"] for o in objects)
    assert "ada.lovelace" not in output
    assert "example.org" not in output
