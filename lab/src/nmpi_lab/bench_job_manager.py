"""The Job Manager's speed and weight on the deployed lab (make lab first).

    python -m nmpi_lab.bench_job_manager [--jobs 100000] [--runs 5]

1. Seed: the collab `bench-100k` gets --jobs finished jobs, written straight into the
   database through the job-queue's own connection settings (once: a re-run tops it up).
   The demo user is one of its viewers.
2. Render: Debian's Chromium (nmpi_lab.browser), signed in as the demo user, opens the
   collab's jobs page; the time from navigation to the first page's 100 rows on screen, and
   from a click on "Next page" to the next 100 rows. Median of --runs. Target: under 1 s.
3. Weight: what the first page loads (index.html, the scripts and style sheets it names,
   the modules it preloads), fetched from the site as the browser would with gzip accepted:
   the bytes on the wire. Target: under 500 kB.
"""

from __future__ import annotations

import argparse
import gzip
import re
import shlex
import statistics
import sys
import time
from urllib.parse import urljoin

import httpx

from nmpi_lab import browser, deployment

COLLAB = "bench-100k"
PAGE_ROWS = 100
RENDER_TARGET_S = 1.0
WEIGHT_TARGET_KB = 500.0
BATCH = 20_000  # rows per INSERT: each well inside the API's 8 s statement timeout

# Run inside the job-queue container (its settings name the database and the writable member).
SEED = """
import asyncio, sys
from sqlalchemy import text
from nmpi_job_queue.cli import _in_session
from nmpi_job_queue.settings import get_settings

COLLAB, WANTED, BATCH, USER = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

async def count(session):
    return (await session.execute(
        text("SELECT count(*) FROM jobs WHERE collab = :c"), {"c": COLLAB})).scalar_one()

async def insert(session, n):
    await session.execute(text('''
        INSERT INTO jobs (code, command, collab, user_id, status, hardware_platform, tags,
                          resource_usage, timestamp_submission, timestamp_completion)
        SELECT 'import pyNN.spiNNaker as sim  # bench ' || i, 'run.py {system}', :c, :u,
               (ARRAY['finished', 'error', 'finished', 'finished'])[1 + i % 4],
               (ARRAY['SpiNNaker', 'BrainScaleS-2'])[1 + i % 2],
               ARRAY['bench', 'batch-' || (i % 10)]::varchar[], 0.001,
               now() - make_interval(mins => :n - i),
               now() - make_interval(mins => :n - i) + interval '5 s'
        FROM generate_series(1, :n) AS i'''), {"c": COLLAB, "u": USER, "n": n})

settings = get_settings()
have = asyncio.run(_in_session(settings, count))
while have < WANTED:
    n = min(BATCH, WANTED - have)
    asyncio.run(_in_session(settings, lambda s: insert(s, n)))
    have += n
    print(f"seeded {have} of {WANTED}", flush=True)
print(f"{COLLAB}: {have} jobs")
"""


def seed(lab: deployment.Deployment, jobs: int) -> None:
    lab.demo_token()  # the demo user exists
    web = lab.host("castor", "web")
    cli = "sudo docker exec nmpi-job-queue-1 nmpi-job-queue"
    lab.ssh(web, f"{cli} collab add {COLLAB} --title 'Benchmark: 100,000 jobs'")
    lab.ssh(web, f"{cli} member add {deployment.DEMO_USER} {COLLAB} --role viewer")
    args = " ".join(shlex.quote(a) for a in (COLLAB, str(jobs), str(BATCH), "bench"))
    out = lab.ssh(
        web,
        f"sudo docker exec -i nmpi-job-queue-1 python - {args} <<'EOF'\n{SEED}\nEOF",
        timeout=600,
    )
    print(out.strip().splitlines()[-1])


def render_times(lab: deployment.Deployment, runs: int) -> tuple[list[float], list[float]]:
    """Seconds from navigation to the first page's rows, and from "Next page" to the next."""
    first: list[float] = []
    following: list[float] = []
    rows = "table tbody tr"
    with browser.chromium(lab) as chromium:
        context = browser.new_context(chromium)
        page = context.new_page()
        browser.sign_in(page, lab)
        url = f"{lab.url}{browser.APP_PATH}collabs/{COLLAB}/jobs"
        for _ in range(runs):
            page.goto("about:blank")
            started = time.monotonic()
            page.goto(url)
            page.locator(rows).nth(PAGE_ROWS - 1).wait_for(timeout=30_000)
            first.append(time.monotonic() - started)
            top = page.locator(rows).first.inner_text()
            started = time.monotonic()
            page.get_by_role("button", name="Next page").click()
            page.wait_for_function(
                "([sel, before]) => { const r = document.querySelectorAll(sel);"
                " return r.length >= 100 && r[0].innerText !== before; }",
                arg=[rows, top],
                timeout=30_000,
            )
            following.append(time.monotonic() - started)
        context.close()
    return first, following


def first_page_weight(lab: deployment.Deployment) -> tuple[float, list[str]]:
    """kB on the wire (gzip accepted) of index.html and what it loads before the app runs."""
    base = lab.url + browser.APP_PATH
    with lab.public_name_resolved(), httpx.Client(verify=lab.tls_context(), timeout=30) as http:

        def wire(url: str) -> tuple[int, bytes]:
            """Bytes sent for `url` when gzip is accepted (what nginx sends compressed, or the
            gzipped size of what it sent plain), and the decoded content."""
            with http.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as reply:
                reply.raise_for_status()
                raw = b"".join(reply.iter_raw())
            if "gzip" in reply.headers.get("content-encoding", ""):
                return len(raw), gzip.decompress(raw)
            return len(gzip.compress(raw, 9)), raw

        total, index = wire(base)
        html = index.decode()
        names = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+\.(?:js|css))"', html)
        for name in names:
            size, _ = wire(urljoin(base, name))
            total += size
    return total / 1000, names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nmpi_lab.bench_job_manager",
        description=(__doc__ or "").split("\n\n")[0],
        epilog="Prints the medians and the targets; exits 1 if a target is missed.",
    )
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs in the collab (100000)")
    parser.add_argument("--runs", type=int, default=5, help="page loads measured (5)")
    args = parser.parse_args(argv)
    if not 1_000 <= args.jobs <= 1_000_000:
        parser.error(f"--jobs must be 1000-1000000 (got {args.jobs})")
    if not 1 <= args.runs <= 50:
        parser.error(f"--runs must be 1-50 (got {args.runs})")
    lab = deployment.load()
    seed(lab, args.jobs)
    first, following = render_times(lab, args.runs)
    weight, names = first_page_weight(lab)
    med_first, med_next = statistics.median(first), statistics.median(following)
    print(
        f"jobs page, {PAGE_ROWS} of {args.jobs} jobs: median {med_first:.2f} s to render "
        f"(min {min(first):.2f}, max {max(first):.2f}, {args.runs} loads); next page "
        f"median {med_next:.2f} s (target {RENDER_TARGET_S:.0f} s)"
    )
    print(
        f"first page weight: {weight:.1f} kB gzipped on the wire, index.html and "
        f"{len(names)} assets (target {WEIGHT_TARGET_KB:.0f} kB)"
    )
    ok = med_first < RENDER_TARGET_S and med_next < RENDER_TARGET_S and weight < WEIGHT_TARGET_KB
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
