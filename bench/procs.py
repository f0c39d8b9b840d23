"""Real processes: servers on free ports of 127.0.0.1, the `petitions` command, and the
bookkeeping that kills every child at the end, whatever happened."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import httpclient

HOST = "127.0.0.1"
BENCH_ROOT = Path(__file__).resolve().parent.parent


class BenchError(Exception):
    """The benchmark itself broke: a server failed, or a correctness check did not hold."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def raise_fd_limit() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit (the most an unprivileged process may)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def fd_hard_limit() -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1 << 20 if hard == resource.RLIM_INFINITY else int(hard)


def rss_kb(pid: int) -> int:
    """Resident memory of a process, from /proc (kB); 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (from /proc/PID/stat); 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy (all cores; /proc/stat), in seconds."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return 0.0
    values = [int(x) for x in fields]
    busy = sum(values[:8]) - values[3] - values[4]  # all but idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Server:
    name: str
    process: asyncio.subprocess.Process
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_kb(self) -> int:
        return rss_kb(self.process.pid)

    @property
    def alive(self) -> bool:
        return self.process.returncode is None


@dataclass
class Service:
    """How to run the service: the `petitions` console script, or `server.main()` from
    another checkout (`--service DIR`)."""

    directory: Path | None = None

    def command(self, *args: str) -> list[str]:
        if self.directory is None:
            return [str(Path(sys.executable).with_name("petitions")), *args]
        return [sys.executable, "-c", "import sys, server; sys.exit(server.main())", *args]

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        env = {**os.environ, **extra}
        paths = [str(BENCH_ROOT)]
        if self.directory is not None:
            paths.insert(0, str(self.directory))
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        return env

    @property
    def cwd(self) -> Path:
        return self.directory or BENCH_ROOT


@dataclass
class Processes:
    """Every child process started, so that `close` can end each one by its id."""

    workdir: Path
    children: list[asyncio.subprocess.Process] = field(default_factory=list)

    async def spawn(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        log: Path | None = None,
        stdin: int | None = asyncio.subprocess.DEVNULL,
        stdout: int | None = None,
    ) -> asyncio.subprocess.Process:
        """Start a child; stderr (and stdout, unless piped) go to `log` when given."""
        handle = log.open("ab") if log is not None else None
        out: object = stdout
        if out is None:
            out = handle if handle is not None else asyncio.subprocess.DEVNULL
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                cwd=cwd,
                stdin=stdin,
                stdout=out,  # type: ignore[arg-type]
                stderr=handle if handle is not None else asyncio.subprocess.PIPE,
                preexec_fn=raise_fd_limit,
                limit=1 << 26,
            )
        finally:
            if handle is not None:
                handle.close()
        self.children.append(process)
        return process

    async def start_server(
        self, name: str, argv: Sequence[str], *, env: dict[str, str], cwd: Path
    ) -> Server:
        """Start a server process on a free port (argv's "{port}" is replaced) and wait until
        its /healthz answers 200."""
        port = free_port()
        log = self.workdir / f"{name}.log"
        process = await self.spawn(
            [arg.replace("{port}", str(port)) for arg in argv], env=env, cwd=cwd, log=log
        )
        server = Server(name, process, port, log)
        try:
            async with asyncio.timeout(90):
                for _ in range(100_000):
                    if process.returncode is not None:
                        raise BenchError(
                            f"{name} exited with {process.returncode} on start:\n{tail(log)}"
                        )
                    with contextlib.suppress(httpclient.HTTPError, OSError, TimeoutError):
                        status, _ = await httpclient.get(server.url, "/healthz", within=2)
                        if status == 200:
                            return server
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise BenchError(f"{name} did not answer /healthz in 90 s:\n{tail(log)}") from None
        raise BenchError(f"{name} never became healthy")

    async def stop(self, process: asyncio.subprocess.Process, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds."""
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(grace):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if process in self.children:
            self.children.remove(process)

    async def close(self) -> None:
        """Kill every child still running, each by its own id."""
        for process in list(self.children):
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(10):
                    await process.wait()
        self.children.clear()

    async def run(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        limit: float = 120.0,
    ) -> tuple[int, str, str]:
        """Run a command to completion: (exit code, stdout, stderr); killed after `limit` s."""
        process = await self.spawn(
            argv, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL
        )
        try:
            async with asyncio.timeout(limit):
                out, err = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise BenchError(f"{argv[0]} {' '.join(argv[1:3])}… took over {limit:.0f} s") from None
        finally:
            if process in self.children and process.returncode is not None:
                self.children.remove(process)
        assert process.returncode is not None
        return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")
