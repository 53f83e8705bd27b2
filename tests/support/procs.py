"""Processes for tests: service processes (see tools/services.py), and commands
run the way a person runs them, bounded in time and never left behind."""

from __future__ import annotations

import asyncio

from tools.services import ServiceProcess

__all__ = ["ServiceProcess", "run_command"]


async def run_command(*command: str, within: float = 60, **kwargs) -> tuple[int, str, str]:
    """Run `command` to its end: (exit code, stdout, stderr). Past `within` seconds it is
    killed (and reaped) before the TimeoutError, so a hung command never outlives its test."""
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, **kwargs
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=within)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    return proc.returncode, out.decode(), err.decode()
