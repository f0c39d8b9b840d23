"""What a load generator sends: a fixed request, or a stream of unique `signPetition` calls.

The same description drives `wrk` (as a Lua script) and the Python generator, so both send
byte-for-byte the same requests."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, replace
from typing import Any
from urllib.parse import quote

SIGN_MUTATION = (
    "mutation Sign($input: SignPetitionInput!) { signPetition(input: $input) "
    "{ signature { name } petition { signatureCount } errors { code } } }"
)
# Confirmation mode answers every signature alike: no name to echo, `needsConfirmation`.
SIGN_CONFIRM_MUTATION = (
    "mutation Sign($input: SignPetitionInput!) { signPetition(input: $input) "
    "{ signature { name } petition { signatureCount } needsConfirmation errors { code } } }"
)
COUNT_QUERY = "query Count($slug: String!) { petition(slug: $slug) { signatureCount } }"
PAGE_QUERY = (
    "query Page($slug: String!, $after: String) { petition(slug: $slug) { signatureCount "
    "signatures(first: 10, after: $after) { edges { cursor node { name createdAt } } "
    "pageInfo { hasNextPage endCursor } } } }"
)
COUNT_SUBSCRIPTION = (
    "subscription Count($id: ID!) { signatureCount(petitionId: $id) { signatureCount } }"
)
NAMES_SUBSCRIPTION = "subscription Names($id: ID!) { signatureAdded(petitionId: $id) { name } }"

# Names carry the identity of the request that made them: "R<run>T<thread> N<k>" for load
# runs, "Bench S<k>" for the paced writer. Responses echo the name, never the email.
SIGNED_NAME = re.compile(rb'"name":\s*"R(\d+)T(\d+) N(\d+)"')
PACED_NAME = re.compile(rb'"name":\s*"Bench S(\d+)"')
COUNT_IN = re.compile(rb'"signatureCount":\s*(\d+)')
CODE_IN = re.compile(rb'"code":\s*"(\w+)"')
# A signature taken in confirmation mode: waiting for its mail, no refusal.
CONFIRM_ACK = re.compile(rb'"needsConfirmation":\s*true\s*,\s*"errors":\s*\[\s*\]')


@dataclass(frozen=True)
class Workload:
    """`static`: the same request every time, or, with `vary`, the same but for a nonce
    ("<thread>-<counter>", put where NONCE stands in the path or body): requests a result
    cache cannot answer. `sign`: a new signer every time, on one petition, identified by
    `run`, the thread (or connection) and a per-thread counter; with `confirm`, the document
    asks for `needsConfirmation` and a signature counts as acknowledged when that is true with
    no error (confirmation mode: the answer names nobody, so only pyload, which knows which
    request it answers, lists the acknowledged ones; wrk only counts them)."""

    kind: str  # "static" | "sign"
    method: str = "POST"
    path: str = "/graphql"
    body: str = ""
    petition_id: str = ""
    run: int = 0
    email_tag: str = "bench"
    vary: bool = False
    confirm: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Workload:
        return cls(**data)


NONCE = "@N@"  # where a varying request puts its nonce


def static_post(path: str, payload: dict[str, Any]) -> Workload:
    return Workload("static", "POST", path, json.dumps(payload, separators=(",", ":")))


def _with_nonce(variables: dict[str, Any] | None, vary: bool) -> dict[str, Any]:
    # An extra variable the operation does not declare: GraphQL ignores it, an exact-request
    # cache cannot.
    return {**(variables or {}), **({"nonce": NONCE} if vary else {})}


def graphql_post(
    query: str, variables: dict[str, Any] | None = None, *, vary: bool = False
) -> Workload:
    workload = static_post("/graphql", {"query": query, "variables": _with_nonce(variables, vary)})
    return replace(workload, vary=vary)


def graphql_get(
    query: str, variables: dict[str, Any] | None = None, *, vary: bool = False
) -> Workload:
    target = "/graphql?query=" + quote(query, safe="")
    values = _with_nonce(variables, vary)
    if values:
        encoded = quote(json.dumps(values, separators=(",", ":")), safe="")
        target += "&variables=" + encoded.replace(quote(NONCE, safe=""), NONCE)
    return Workload("static", "GET", target, "", vary=vary)


def with_nonce(text: str, nonce: str) -> str:
    return text.replace(NONCE, nonce)


def sign_workload(petition_id: str, run: int, email_tag: str, *, confirm: bool = False) -> Workload:
    return Workload("sign", petition_id=petition_id, run=run, email_tag=email_tag, confirm=confirm)


def sign_prefix(petition_id: str, confirm: bool = False) -> str:
    """Everything of a `signPetition` body up to the first name."""
    return (
        '{"query":'
        + json.dumps(SIGN_CONFIRM_MUTATION if confirm else SIGN_MUTATION)
        + ',"variables":{"input":{"petitionId":"'
        + petition_id
        + '","firstName":"'
    )


def sign_body(petition_id: str, first: str, last: str, email: str, confirm: bool = False) -> bytes:
    """The JSON body of one `signPetition` (the Lua script builds the same string)."""
    tail = '","lastName":"' + last + '","email":"' + email + '"}}}'
    return (sign_prefix(petition_id, confirm) + first + tail).encode()


def signer(workload: Workload, thread: int, k: int) -> tuple[str, str, str]:
    """First name, last name and email of request `k` of `thread`."""
    return (
        f"R{workload.run}T{thread}",
        f"N{k}",
        f"{workload.email_tag}-r{workload.run}-t{thread}-{k}@example.org",
    )


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal here


# Per-thread counters; `done` prints one JSON line with the summary, the latency curve
# and, for signing, which requests of each thread were answered with a signature.
_LUA_DONE = r"""
function done(summary, latency, requests)
  local curve = {}
  for i = 0, 200 do
    curve[#curve + 1] = string.format("%.1f", latency:percentile(i / 2))
  end
  local threads = {}
  for _, t in ipairs(all_threads) do
    local acked = t:get("acked") or {}
    local parts = {}
    for i = 1, #acked do parts[i] = acked[i] end
    threads[#threads + 1] = string.format(
      '{"id":%d,"sent":%d,"answered":%d,"ok":%d,"refused":%d,"acked":[%s]}',
      t:get("id"), t:get("sent") or 0, t:get("answered") or 0, t:get("ok") or 0,
      t:get("refused") or 0, table.concat(parts, ","))
  end
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"max":%.1f,"p50":%.1f,"p90":%.1f,"p99":%.1f,"p999":%.1f},' ..
    '"curve_us":[%s],"threads":[%s]}\n',
    summary.requests, summary.duration, summary.bytes,
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9),
    table.concat(curve, ","), table.concat(threads, ",")))
end
"""

_LUA_SETUP = r"""
all_threads = {}
local next_id = @FIRST@
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(all_threads, thread)
end
"""


def lua_script(workload: Workload, first_thread: int = 0) -> str:
    """A wrk script sending `workload`; thread ids start at `first_thread`."""
    setup = _LUA_SETUP.replace("@FIRST@", str(first_thread))
    if workload.kind == "static" and workload.vary:
        post = workload.method == "POST"
        prefix, _, suffix = (workload.body if post else workload.path).partition(NONCE)
        return (
            setup
            + _LUA_VARY.replace("@METHOD@", _lua_string(workload.method))
            .replace("@PREFIX@", _lua_string(prefix))
            .replace("@SUFFIX@", _lua_string(suffix))
            .replace("@REQUEST@", _LUA_VARY_POST if post else _LUA_VARY_GET)
            .replace("@PATH@", _lua_string(workload.path))
            + _LUA_DONE
        )
    if workload.kind == "static":
        body = f"wrk.method = {_lua_string(workload.method)}\n"
        if workload.method == "POST":
            body += f"wrk.body = {_lua_string(workload.body)}\n"
            body += 'wrk.headers["Content-Type"] = "application/json"\n'
        body += r"""
sent = 0
answered = 0
function response(status, headers, body)
  answered = answered + 1
end
"""
        # `response` costs a little Lua per answer; it keeps `answered` honest for every run.
        return setup + body + _LUA_DONE
    sign = (
        _LUA_SIGN.replace(
            "@RESPONSE@", _LUA_CONFIRM_RESPONSE if workload.confirm else _LUA_RESPONSE
        )
        .replace("@PREFIX@", _lua_string(sign_prefix(workload.petition_id, workload.confirm)))
        .replace("@RUN@", str(workload.run))
        .replace("@EMAIL_PREFIX@", _lua_string(f"{workload.email_tag}-r{workload.run}-t"))
        .replace("@PATH@", _lua_string(workload.path))
    )
    return setup + sign + _LUA_DONE


_LUA_SIGN = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local prefix = @PREFIX@ .. "R@RUN@T"
local email_prefix = @EMAIL_PREFIX@
sent = 0
answered = 0
ok = 0
refused = 0
acked = {}
function request()
  local k = sent
  sent = sent + 1
  local body = prefix .. id .. '","lastName":"N' .. k .. '","email":"' .. email_prefix ..
    id .. "-" .. k .. '@example.org"}}}'
  return wrk.format(nil, @PATH@, nil, body)
end
@RESPONSE@"""

_LUA_RESPONSE = r"""
function response(status, headers, body)
  answered = answered + 1
  local k = string.match(body, '"name":%s*"R%d+T%d+ N(%d+)"')
  if status == 200 and k then
    ok = ok + 1
    acked[#acked + 1] = tonumber(k)
  else
    refused = refused + 1
  end
end
"""

# Confirmation mode: the answer names nobody (and wrk does not say which request an answer
# is for), so acknowledgements are counted and `acked` stays empty.
_LUA_CONFIRM_RESPONSE = r"""
local taken = '"needsConfirmation":%s*true%s*,%s*"errors":%s*%[%s*%]'
function response(status, headers, body)
  answered = answered + 1
  if status == 200 and string.find(body, taken) then
    ok = ok + 1
  else
    refused = refused + 1
  end
end
"""


_LUA_VARY = r"""
wrk.method = @METHOD@
wrk.headers["Content-Type"] = "application/json"
local prefix = @PREFIX@
local suffix = @SUFFIX@
sent = 0
answered = 0
function request()
  sent = sent + 1
  local nonce = id .. "-" .. sent
  @REQUEST@
end
function response(status, headers, body)
  answered = answered + 1
end
"""
_LUA_VARY_POST = "return wrk.format(nil, @PATH@, nil, prefix .. nonce .. suffix)"
_LUA_VARY_GET = "return wrk.format(nil, prefix .. nonce .. suffix, nil, nil)"
