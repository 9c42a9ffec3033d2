"""A new user's first run, timed step by step: a fresh clone, `make run`, `banditroute init --providers
openai`, `serve --config`, then the README's proxy example (the official OpenAI SDK, verbatim but for the
port) answered through a fake OpenAI upstream (tests/support/fake_upstream.py) standing in for OpenAI.

    python tools/first_run.py [--repo .] [--branch main] [--port 18481] [--workdir /tmp/banditroute-first-run]

Prints one line per step with its seconds, then a JSON summary. Every process it starts runs in its own
process group and is stopped by that group's id.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

FAKE_UPSTREAM = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from tests.support.fake_upstream import FakeUpstream

async def main():
    fake = FakeUpstream()
    await fake.start()
    print(fake.base_url, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def started(cmd: list[str], cwd: Path, env: dict[str, str], log: Path, timeout_s: float) -> subprocess.Popen[bytes]:
    """Start `cmd` and return once its log has the `started` line (the server listens)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while '"event":"started"' not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise SystemExit(f"{' '.join(cmd)} did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
    return proc


def stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def readme_example(readme: str, port: int) -> str:
    section = readme[readme.index("## From an OpenAI client") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's proxy example"
    return match.group(1).replace("127.0.0.1:8080", f"127.0.0.1:{port}") + "\nprint(model, repr(answer))\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", default=".", help="the repository to clone (default: this one)")
    parser.add_argument("--branch", help="the branch to clone (default: the repository's current branch)")
    parser.add_argument("--port", type=int, default=18481)
    parser.add_argument("--workdir", default="/tmp/banditroute-first-run", help="emptied, then cloned into")
    args = parser.parse_args()
    repo = Path(args.repo).resolve()
    branch = args.branch or subprocess.check_output(["git", "-C", str(repo), "branch", "--show-current"], text=True)
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    clone = work / "banditroute"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BANDITROUTE_", "OPENAI_"))}
    env["BANDITROUTE_PORT"] = str(args.port)
    times: dict[str, float] = {}

    def step(name: str, since: float) -> None:
        times[name] = round(time.monotonic() - since, 1)
        print(f"{times[name]:7.1f} s  {name}", flush=True)

    t = time.monotonic()
    subprocess.run(["git", "clone", "-q", "-b", branch.strip(), str(repo), str(clone)], check=True)
    step("git clone", t)

    t = time.monotonic()
    server = started(["make", "run"], clone, env, work / "make-run.log", timeout_s=1200)
    step("make run: venv, install, serve until `started`", t)
    with urllib.request.urlopen(f"http://127.0.0.1:{args.port}/", timeout=5) as resp:
        index = json.loads(resp.read())
    stop(server)

    bin_dir = clone / ".venv" / "bin"
    fake = subprocess.Popen(
        [str(bin_dir / "python"), "-c", FAKE_UPSTREAM, str(clone)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert fake.stdout is not None
        upstream = fake.stdout.readline().strip()
        t = time.monotonic()
        subprocess.run([str(bin_dir / "banditroute"), "init", "--providers", "openai"], cwd=clone, env=env, check=True)
        step("banditroute init --providers openai", t)
        config = clone / "banditroute.toml"  # the fake upstream stands in for OpenAI
        config.write_text(config.read_text().replace("https://api.openai.com/v1", upstream))
        env["OPENAI_API_KEY"] = "sk-first-run"

        t = time.monotonic()
        cmd = [str(bin_dir / "banditroute"), "serve", "--config", "banditroute.toml"]
        server = started(cmd, clone, env, work / "serve.log", timeout_s=120)
        step("banditroute serve --config banditroute.toml until `started`", t)
        try:
            t = time.monotonic()
            example = readme_example((clone / "README.md").read_text(), args.port)
            answer = subprocess.run(
                [str(bin_dir / "python"), "-c", example], cwd=clone, capture_output=True, text=True, check=True
            )
            step("the README's proxy example (a new Python process) until the answer", t)
        finally:
            stop(server)
    finally:
        stop(fake)
    print(json.dumps({"seconds": times, "index": index, "answer": answer.stdout.strip()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
