"""The service under test, deployed for real: `petitions serve` processes on a fresh SQLite
file (one process, memory:// broadcast) or a fresh PostgreSQL database with Redis (two
processes on two ports, after `petitions migrate`)."""

from __future__ import annotations

import asyncio
import base64
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from bench import httpclient, seed
from bench.procs import BenchError, Processes, Server, Service, cpu_seconds, tail

ADMIN_TOKEN = "bench-admin-token"
_NOTEWORTHY = ("WARNING", "ERROR", "CRITICAL")

CREATE_PETITION = """
mutation Create($input: CreatePetitionInput!) {
  createPetition(input: $input) { petition { id slug signatureCount } errors { code message } }
}
"""


def petition_pk(global_id: str) -> int:
    text = base64.urlsafe_b64decode(global_id + "=" * (-len(global_id) % 4)).decode()
    kind, _, pk = text.partition(":")
    if kind != "Petition" or not pk.isdigit():
        raise BenchError(f"unexpected petition id {global_id!r} ({text!r})")
    return int(pk)


def petition_global_id(pk: int) -> str:
    return base64.urlsafe_b64encode(f"Petition:{pk}".encode()).decode().rstrip("=")


@dataclass
class Deployment:
    backend: str  # "sqlite" | "postgres"
    procs: Processes
    service: Service
    postgres_admin_url: str = ""
    redis_url: str = ""
    database_url: str = ""
    broadcast_url: str = "memory://"
    prefix: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:10]}")
    servers: list[Server] = field(default_factory=list)
    restarts: int = 0
    log_offsets: dict[str, int] = field(default_factory=dict)
    # Settings on top of the deployment's own (e.g. confirmation mode), for the processes
    # started next (`restart()`) and for `command()`; they win over the ones above.
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def process_count(self) -> int:
        return 1 if self.backend == "sqlite" else 2

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    @property
    def ports(self) -> list[int]:
        return [server.port for server in self.servers]

    def env(self) -> dict[str, str]:
        return self.service.env(
            {
                "PETITIONS_DATABASE_URL": self.database_url,
                "PETITIONS_BROADCAST_URL": self.broadcast_url,
                "PETITIONS_CHANNEL_PREFIX": self.prefix,
                "PETITIONS_ADMIN_TOKEN": ADMIN_TOKEN,
                **self.extra_env,
            }
        )

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "processes": self.process_count,
            "database": self.database_url.split("@")[-1],
            "broadcast": self.broadcast_url,
            "service": str(self.service.directory or "petitions (installed)"),
        }

    async def prepare(self) -> None:
        """A fresh, migrated database."""
        if self.backend == "sqlite":
            self.database_url = f"sqlite://{self.procs.workdir / 'petitions.sqlite3'}"
            self.broadcast_url = "memory://"
        else:
            self.database_url = await seed.create_postgres_database(self.postgres_admin_url)
            self.broadcast_url = self.redis_url
        code, out, err = await self.command("migrate")
        if code != 0:
            raise BenchError(f"petitions migrate failed ({code}):\n{out}\n{err}")

    async def command(self, *args: str, limit: float = 300.0) -> tuple[int, str, str]:
        return await self.procs.run(
            self.service.command(*args), env=self.env(), cwd=self.service.cwd, limit=limit
        )

    async def start(self) -> None:
        for index in range(self.process_count):
            server = await self.procs.start_server(
                f"{self.backend}-service-{self.restarts}-{index}",
                self.service.command("serve", "--port", "{port}"),
                env=self.env(),
                cwd=self.service.cwd,
            )
            self.servers.append(server)

    async def stop(self) -> None:
        for server in self.servers:
            await self.procs.stop(server.process, grace=15)
        self.servers = []

    async def restart(self) -> None:
        """Fresh processes (on new ports): memory figures start from a clean slate."""
        await self.stop()
        self.restarts += 1
        await self.start()

    def check_alive(self) -> None:
        for server in self.servers:
            if not server.alive:
                raise BenchError(
                    f"{server.name} died (exit {server.process.returncode}):\n{tail(server.log)}"
                )

    def scan_logs(self) -> dict[str, int]:
        """Warnings, errors and tracebacks the service processes logged since the last scan,
        counted by message (digits blanked, so that ports and ids group together)."""
        found: dict[str, int] = {}
        for path in sorted(self.procs.workdir.glob(f"{self.backend}-service-*.log")):
            offset = self.log_offsets.get(path.name, 0)
            with path.open("rb") as handle:
                handle.seek(offset)
                text = handle.read()
            self.log_offsets[path.name] = offset + len(text)
            in_traceback = False
            for line in text.decode(errors="replace").splitlines():
                message = ""
                if line.startswith("Traceback"):
                    in_traceback = True
                elif in_traceback and line and not line[0].isspace():
                    if not line.startswith(("During handling", "The above exception")):
                        message = "raised: " + line  # the exception a traceback ends with
                        in_traceback = False
                elif any(word in line for word in _NOTEWORTHY):
                    message = line
                if message:
                    message = re.sub(r"\d+", "#", message.strip())[:160]
                    found[message] = found.get(message, 0) + 1
        return found

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(server.pid) for server in self.servers)

    async def busy(self, window: float = 1.0) -> float:
        """Share of one core the servers used over the next `window` seconds."""
        before = self.cpu_seconds()
        await asyncio.sleep(window)
        return (self.cpu_seconds() - before) / window

    def rss_kb(self) -> int:
        return sum(server.rss_kb() for server in self.servers)

    async def cleanup(self) -> None:
        if self.backend == "postgres" and self.database_url:
            await seed.drop_postgres_database(self.postgres_admin_url, self.database_url)

    async def create_petition(self, slug: str) -> tuple[str, int]:
        """An open petition made through the API, as an admin would; (global ID, pk)."""
        answer = await httpclient.graphql(
            self.urls[0],
            CREATE_PETITION,
            {
                "input": {
                    "title": f"Bench {slug}",
                    "target": "The benchmark",
                    "goal": "Count every signature exactly.",
                    "body": "Created by python -m bench.",
                    "slug": slug,
                }
            },
            token=ADMIN_TOKEN,
        )
        payload = (answer.get("data") or {}).get("createPetition") or {}
        if answer.get("errors") or payload.get("errors") or not payload.get("petition"):
            raise BenchError(f"createPetition failed: {answer}")
        global_id = str(payload["petition"]["id"])
        return global_id, petition_pk(global_id)
