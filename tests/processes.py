"""Real server processes for tests: `petitions serve` started as a command, on a free port."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import ADMIN_TOKEN, free_port

PETITIONS = str(Path(sys.executable).with_name("petitions"))


@dataclass
class ServerProcess:
    process: asyncio.subprocess.Process
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.returncode is None:
            self.process.send_signal(sig)
        async with asyncio.timeout(timeout):
            return await self.process.wait()


def service_env(database_url: str, broadcast_url: str, prefix: str) -> dict[str, str]:
    return {
        "PETITIONS_DATABASE_URL": database_url,
        "PETITIONS_BROADCAST_URL": broadcast_url,
        "PETITIONS_CHANNEL_PREFIX": prefix,
        "PETITIONS_ADMIN_TOKEN": ADMIN_TOKEN,
    }


async def run_command(*args: str, env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    """Run `petitions ARGS…`; returns its exit code and combined output."""
    process = await asyncio.create_subprocess_exec(
        PETITIONS,
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(timeout):
        output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


@asynccontextmanager
async def server_process(
    env: dict[str, str], *args: str, healthy: bool = True
) -> AsyncIterator[ServerProcess]:
    """`petitions serve` in a process of its own, yielded once `/healthz` answers 200, or, with
    `healthy=False`, once it answers at all (a process whose broker is away answers 503)."""
    port = free_port()
    with tempfile.NamedTemporaryFile(prefix="petitions-", suffix=".log", delete=False) as log:
        path = Path(log.name)
        process = await asyncio.create_subprocess_exec(
            PETITIONS,
            "serve",
            "--port",
            str(port),
            *args,
            env={**os.environ, **env},
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    server = ServerProcess(process, f"http://127.0.0.1:{port}", path)
    try:
        async with httpx.AsyncClient(base_url=server.url) as client, asyncio.timeout(30):
            while True:
                if process.returncode is not None:
                    raise RuntimeError(f"server exited early:\n{server.output()}")
                try:
                    if (await client.get("/healthz")).status_code == 200 or not healthy:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        yield server
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        path.unlink(missing_ok=True)
