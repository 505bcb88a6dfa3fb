"""What the FHIR read costs: `GET /fhir/R4/QuestionnaireResponse?patient=` beside our own
`GET /v1/completions?client_id=`, for the same client and the same page of 50.

    .venv/bin/python -m bench.fhir_cost [--duration 10] [--warmup 3] [--connections 16]
                                        [--profile]            # also a step of `make bench`

With bench/load.py's machinery, nothing installed by hand:
1. installs wrk if it is missing; drops and recreates the database `homework_bench_fhir` (its
   own, never bench.load's `homework_bench`) next to HOMEWORK_TEST_POSTGRES_URL's, migrates it,
   creates a tenant with `homework tenants create` and seeds it as bench.load does
   (bench/seed_load.py: 10,000 clients, about 1,000,000 completions; 2-4 minutes);
2. picks the first client (by id) with more than 50 completions, so that both pages are full
   and both have a next one (if none has, the client with the most, and says so);
3. starts the service as bench.load does (`homework serve --no-migrate`, one uvicorn worker,
   its pool sized to the concurrency with no overflow) and gets a system token from its
   `POST /oauth/token` (client_credentials, scope `system/completions.rs`: the whole tenant);
4. checks with one request each that both answer 200, the FHIR one as application/fhir+json,
   and that the searchset Bundle holds the same completions, in the same order, as the /v1
   page (else it stops);
5. drives both with wrk (bench/load_wrk.lua, "cycle" mode) at a fixed concurrency, interleaved:
   ours, FHIR, ours, FHIR, ... (--rounds, default 4); each run a warm-up (3 s) then a
   measured run (10 s). The figure is the MEDIAN of the rounds' ratios (each FHIR run against
   the run of ours seconds before it, under the same conditions: on this shared machine the
   rate of a whole run moves by a third from minute to minute); the better run of each is
   reported beside it, with its latencies and CPU. Every run is in the JSON;
6. prints requests per second of FHIR / ours (goal >= 0.7), p50, p99 and the server's CPU
   milliseconds per request, writes bench/results/fhir_cost.json, and with --profile records
   the service under the FHIR load with py-spy (as bench.load does) and summarises where its
   CPU goes;
7. stops the service and drops the database, whatever happened.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench import load, seed_load

DATABASE = "homework_bench_fhir"

GOAL = 0.7
PAGE = 50
ROUNDS = 4
SCOPE = "system/completions.rs"
FHIR_MEDIA_TYPE = "application/fhir+json"
RESULTS = load.RESULTS / "fhir_cost.json"
ENDPOINTS = {
    "ours": "GET /v1/completions?client_id=",
    "fhir": "GET /fhir/R4/QuestionnaireResponse?patient=",
}

say = load.say


def system_token(base: str, credentials: dict[str, str], scope: str) -> str:
    return load.post_token(
        base,
        {
            "grant_type": "client_credentials",
            "client_id": credentials["client_id"],
            "client_secret": credentials["client_secret"],
            "scope": scope,
        },
    )


def get(base: str, path: str, token: str) -> tuple[int, str, Any]:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get("content-type", ""), json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("content-type", ""), error.read().decode()[:500]


async def pick_client(dsn: str) -> tuple[str, int, str]:
    """(client id, its completions, a note if it has too few for a full page and a next one)."""
    connection = await asyncpg.connect(dsn)
    try:
        row = await connection.fetchrow(
            "SELECT client_id, count(*) AS n FROM completions GROUP BY client_id "
            "HAVING count(*) > $1 ORDER BY client_id LIMIT 1",
            PAGE,
        )
        if row is not None:
            return row["client_id"], row["n"], ""
        row = await connection.fetchrow(
            "SELECT client_id, count(*) AS n FROM completions GROUP BY client_id "
            "ORDER BY count(*) DESC, client_id LIMIT 1"
        )
        if row is None:
            raise SystemExit("the seed wrote no completions")
    finally:
        await connection.close()
    return (
        row["client_id"],
        row["n"],
        f"no client has more than {PAGE} completions: the one with the most ({row['n']})",
    )


def check(base: str, paths: dict[str, str], token: str) -> int:
    """One request each: both 200, the Bundle's entries the /v1 page's items, in order."""
    (status_ours, type_ours, ours), (status_fhir, type_fhir, fhir) = (
        get(base, paths[name], token) for name in ("ours", "fhir")
    )
    if status_ours != 200 or status_fhir != 200:
        raise SystemExit(
            f"not both 200: /v1 {status_ours} {ours if status_ours != 200 else ''}; "
            f"FHIR {status_fhir} {fhir if status_fhir != 200 else ''}"
        )
    if not type_fhir.startswith(FHIR_MEDIA_TYPE):
        raise SystemExit(f"the FHIR search answered {type_fhir!r}, not {FHIR_MEDIA_TYPE}")
    if fhir.get("resourceType") != "Bundle" or fhir.get("type") != "searchset":
        raise SystemExit(f"the FHIR search answered no searchset Bundle: {str(fhir)[:300]}")
    items = ours["data"]
    entries = fhir.get("entry", [])
    if len(entries) != len(items):
        raise SystemExit(
            f"the Bundle has {len(entries)} entries, the /v1 page {len(items)} items: not the "
            "same page, nothing to compare"
        )
    from app.fhir.canonical import fhir_id

    wanted = [fhir_id(item["id"]) for item in items]
    got = [entry["resource"]["id"] for entry in entries]
    if got != wanted:
        raise SystemExit("the Bundle's QuestionnaireResponses are not the /v1 page's completions")
    has_next = any(link.get("relation") == "next" for link in fhir.get("link", []))
    if has_next != (ours.get("next_cursor") is not None):
        raise SystemExit("one page has a next one and the other not")
    say(
        f"   both 200 ({type_ours.split(';')[0]} and {type_fhir.split(';')[0]}), "
        f"{len(items)} completions each, the same ones in the same order, next page on both: "
        f"{has_next}; bodies {len(json.dumps(ours)):,} and {len(json.dumps(fhir)):,} bytes"
    )
    return len(items)


def describe(run: load.Run) -> str:
    return (
        f"{run.rps:>7.0f} req/s  p50 {run.p50_ms:>6.1f} ms  p99 {run.p99_ms:>6.1f} ms  "
        f"non-2xx {run.non_2xx}  CPU ms/request: server {run.server_cpu_ms_per_request:.2f}, "
        f"postgres {run.postgres_cpu_ms_per_request:.2f}  cores: server {run.server_cpu:.2f}, "
        f"postgres {run.postgres_cpu:.2f}, wrk {run.wrk_cpu:.2f}, others {run.other_cpu:.2f}"
    )


async def main(arguments: argparse.Namespace) -> int:
    started = time.monotonic()
    connections = arguments.connections
    wrk = load.ensure_wrk()
    admin_url = os.environ.get("HOMEWORK_TEST_POSTGRES_URL", load.DEFAULT_ADMIN_URL)
    info = load.machine()
    say(
        f"machine: {info['nproc']} CPUs ({info['cpu']}), load average "
        f"{info['loadavg_at_start'][0]:.2f}"
    )
    now = datetime.now(UTC)
    say(f"\n1. database {DATABASE}: recreate, migrate, seed")
    url = await load.recreate_database(admin_url, DATABASE)
    service: load.Server | None = None
    runs: dict[str, list[load.Run]] = {"ours": [], "fhir": []}
    profile: dict[str, Any] | None = None
    try:
        await load.migrate(url)
        credentials = load.create_tenant(url)
        dsn = load._dsn(url)
        seeded = await seed_load.seed(dsn, credentials["tenant_id"], now, say)
        say(f"   seeded in {seeded.seconds:.0f} s")
        client_id, completions, note = await pick_client(dsn)
        aside = f" ({note})" if note else ""
        say(f"   the client: {client_id}, {completions} completions{aside}")

        workdir = Path(tempfile.mkdtemp(prefix="homework-bench-fhir-"))
        service = load.start_service(url, connections, workdir)
        service.wait_ready()
        say(f"\n2. the service on :{service.port} (pid {service.process.pid}), pool {connections}")
        token = system_token(service.base, credentials, SCOPE)
        patient = urllib.parse.quote("Patient/" + client_id.replace("_", "-"), safe="")
        paths = {
            "ours": f"/v1/completions?client_id={client_id}&limit={PAGE}",
            "fhir": f"/fhir/R4/QuestionnaireResponse?patient={patient}&_count={PAGE}",
        }
        lines: dict[str, Path] = {}
        for name, path in paths.items():
            lines[name] = workdir / f"{name}.txt"
            lines[name].write_text(f"GET\t{path}\t{token}\t\n")

        say("\n3. one request each, with a system token (" + SCOPE + ")")
        items = check(service.base, paths, token)

        say(
            f"\n4. load: {connections} connections, {load.WRK_THREADS} wrk threads, "
            f"{arguments.warmup} s warm-up then {arguments.duration} s measured, "
            f"{arguments.rounds} rounds of ours then FHIR"
        )
        pid = service.process.pid
        for round_number in range(1, arguments.rounds + 1):
            for name in ("ours", "fhir"):
                run_id = f"fhir-cost-{name}-{round_number}-{int(time.time())}"
                load.drive(wrk, service.base, lines[name], "cycle", run_id + "-w",
                           arguments.warmup, connections, pid, dsn)  # fmt: skip
                run = load.drive(wrk, service.base, lines[name], "cycle", run_id,
                                 arguments.duration, connections, pid, dsn)  # fmt: skip
                runs[name].append(run)
                say(f"   ({round_number}) {name:<4} {describe(run)}")
                if run.non_2xx or run.socket_errors:
                    raise SystemExit(
                        f"{name}: {run.non_2xx} non-2xx answers and {run.socket_errors} socket "
                        "errors under load; the figures would not be of the endpoint"
                    )

        if arguments.profile:
            say("\n5. the service under the FHIR load, profiled (py-spy, 100 samples/s, 10 s)")
            spy = load.ensure_py_spy(Path(tempfile.gettempdir()) / "homework-bench-tools")
            if spy:
                raw = workdir / "profile-fhir.txt"
                recorder = await asyncio.create_subprocess_exec(
                    spy, "record", "--pid", str(pid), "--duration", "10", "--rate", "100",
                    "--format", "raw", "--nonblocking", "-o", str(raw),
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                )  # fmt: skip
                await asyncio.to_thread(load.drive, wrk, service.base, lines["fhir"], "cycle",
                                        f"fhir-cost-profile-{int(time.time())}", 12,
                                        connections, pid, dsn)  # fmt: skip
                await asyncio.wait_for(recorder.wait(), 30)
                if raw.exists():
                    profile = load.summarise_profile(raw)
                    say(f"   {profile['samples']} samples; where: " + ", ".join(
                        f"{n} {v}%" for n, v in list(profile["places"].items())[:7]))  # fmt: skip
                    say("   for: " + ", ".join(f"{n.strip()} {v}%"
                        for n, v in profile["operations"].items() if v >= 3))  # fmt: skip
                    say(f"   the raw stacks: {raw}")
                    say("   top self: " + ", ".join(
                        f"{n} {v}%" for n, v in profile["top_self"][:8]))  # fmt: skip
                else:
                    say("   py-spy wrote nothing")
    finally:
        if service is not None:
            service.stop()
        await load.drop_database(admin_url, DATABASE)

    best = {name: max(done, key=lambda r: r.rps) for name, done in runs.items()}
    ours, fhir = best["ours"], best["fhir"]
    ratio = fhir.rps / ours.rps
    # Each round's FHIR run against the ours just before it: the two ran seconds apart, under
    # the same conditions, so the median of these is the figure least moved by a noisy machine.
    paired = sorted(f.rps / o.rps for o, f in zip(runs["ours"], runs["fhir"], strict=True))
    median = statistics.median(paired)
    line = (
        f"FHIR QuestionnaireResponse search: {median:.2f} of ours (median of {len(paired)} "
        f"paired rounds, {paired[0]:.2f}-{paired[-1]:.2f}; goal ≥ {GOAL}); best runs "
        f"{fhir.rps:.0f} req/s vs {ours.rps:.0f} req/s for /v1/completions ({ratio:.2f}), p99 "
        f"{fhir.p99_ms:.1f} ms vs {ours.p99_ms:.1f} ms, server CPU "
        f"{fhir.server_cpu_ms_per_request:.2f} vs {ours.server_cpu_ms_per_request:.2f} "
        f"ms/request ({PAGE} per page, {connections} connections, runs of {arguments.duration} s)"
    )
    say("\n" + line)
    document = {
        "when": now.isoformat(),
        "command": "python -m bench.fhir_cost " + " ".join(sys.argv[1:]),
        "machine": info,
        "settings": {
            "connections": connections,
            "wrk_threads": load.WRK_THREADS,
            "warmup_s": arguments.warmup,
            "duration_s": arguments.duration,
            "rounds": arguments.rounds,
            "order": "ours, fhir, ours, fhir",
            "figure": "the median of each round's FHIR/ours ratio; also the better (more "
            "req/s) of each endpoint's measured runs",
            "page_size": PAGE,
            "token": f"system, {SCOPE}",
            "service_pool": {"size": connections, "max_overflow": 0},
        },
        "client": {"id": client_id, "completions": completions, "page_items": items, "note": note},
        "endpoints": {
            name: {
                "request": "GET " + paths[name],
                "best": asdict(best[name]),
                "runs": [asdict(r) for r in runs[name]],
            }
            for name in ("ours", "fhir")
        },
        "paired_rps_ratios": [round(r, 3) for r in paired],
        "median_rps_ratio": round(median, 3),
        "best_rps_ratio": round(ratio, 3),
        "p99_ratio": round(fhir.p99_ms / ours.p99_ms, 3),
        "server_cpu_ratio": round(
            fhir.server_cpu_ms_per_request / max(1e-9, ours.server_cpu_ms_per_request), 3
        ),
        "goal_rps_ratio": GOAL,
        "meets_goal": median >= GOAL,
        "profile_fhir": profile,
        "total_seconds": round(time.monotonic() - started),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    say(f"results: bench/results/{RESULTS.name}")
    return 0


def run() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="measured seconds per run")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up seconds per run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="runs of each, interleaved")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the service under the FHIR load"
    )
    sys.exit(asyncio.run(main(parser.parse_args())))


if __name__ == "__main__":
    run()
