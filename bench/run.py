"""Benchmark: django-durable, its peers and PostgreSQL's own limit, on one throwaway server.

    python3 dev.py bench                  # the full run, about 15 minutes on 2 cores
    python3 dev.py bench --try-layouts    # also other process x thread layouts
    python3 dev.py bench --report-only    # redraw docs/ from bench/results/last.json

Re-executes itself in .venv-bench (bench/environment.py), starts PostgreSQL on
127.0.0.1 (bench/postgres.py), runs pgbench (bench/ceiling.py), then each system in a
process of its own (bench/driver.py with bench/durable.py and bench/peers/*.py), and
writes the table to docs/benchmarks.md and the chart to docs/img/benchmarks.png
(bench/report.py, bench/chart.py). See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import environment  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "last.json"
PEERS = {
    "django-tasks-db": "bench.peers.django_tasks_peer",
    "procrastinate": "bench.peers.procrastinate_peer",
    "dbos": "bench.peers.dbos_peer",
}
LAYOUTS = ["1x8", "2x4", "2x8", "4x4", "4x8"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--runs", type=int, default=4000, help="1-step jobs per drain (default: %(default)s)")
    add("--runs-10", type=int, default=1000, help="10-step jobs per drain (default: %(default)s)")
    add("--enqueue-runs", type=int, default=1000, help="jobs enqueued one by one")
    add("--rounds", type=int, default=1, help="repeat each drain, take the median")
    add("--processes", type=int, default=2, help="worker processes (default: %(default)s)")
    add("--threads", type=int, default=8, help="threads per process (default: %(default)s)")
    add("--latency-samples", type=int, default=150, help="pickups timed for django-durable")
    add("--peer-latency-samples", type=int, default=60, help="pickups timed per peer")
    add("--pgbench-seconds", type=int, default=5)
    add("--leak-runs", type=int, default=100_000, help="runs watched for worker memory growth")
    add("--finished-runs", type=int, default=1_000_000, help="finished runs for the claim cost")
    add("--claims", type=int, default=1000, help="claims timed per table state")
    add("--checkpoint-steps", type=int, default=2000)
    add("--try-layouts", action="store_true", help=f"also drain with {', '.join(LAYOUTS)}")
    add("--peers", default=",".join(PEERS), help="comma-separated (default: %(default)s)")
    add("--no-peers", action="store_true", help="measure django-durable and pgbench only")
    add("--report-only", action="store_true", help="rewrite docs/ from the last results")
    add("--no-docs", action="store_true", help="print the table, leave docs/ and results alone")
    add("--port", type=int, default=55432, help="throwaway PostgreSQL port (127.0.0.1)")
    return parser.parse_args()


def run_system(module: str, options: dict, work: Path) -> dict:
    options_path = work / f"{module}.options.json"
    result_path = work / f"{module}.result.json"
    options_path.write_text(json.dumps(options, default=str))
    subprocess.run(
        [sys.executable, "-m", "bench.driver", module, str(options_path), str(result_path)],
        check=True,
        cwd=ROOT,
    )
    return json.loads(result_path.read_text())


def measure(args: argparse.Namespace) -> dict:
    from bench import ceiling, machine
    from bench.postgres import ThrowawayPostgres

    peers = [] if args.no_peers else [p for p in args.peers.split(",") if p]
    server = ThrowawayPostgres(port=args.port)
    server.start()
    try:
        results: dict = {"machine": machine.describe(server.version())}
        total = args.processes * args.threads
        clients = sorted({1, args.processes, total})
        print(f"== ceiling: pgbench at {clients} clients", flush=True)
        results["ceiling"] = ceiling.measure(server, clients, args.pgbench_seconds)
        results["ceiling"]["workers_clients"] = total
        # Worker logs outlive the server, for a look after a failure.
        work = Path(tempfile.mkdtemp(prefix="durable-bench-logs-"))
        print(f"== worker logs in {work}", flush=True)
        common = {
            "postmaster": server.server_pids()[0],
            "log_dir": str(work),
            "runs": args.runs,
            "runs_10": args.runs_10,
            "enqueue_runs": args.enqueue_runs,
            "rounds": args.rounds,
            "processes": args.processes,
            "threads": args.threads,
            "latency_samples": args.latency_samples,
            "peer_latency_samples": args.peer_latency_samples,
            "leak_runs": args.leak_runs,
            "finished_runs": args.finished_runs,
            "claims": args.claims,
            "checkpoint_steps": args.checkpoint_steps,
            "layouts": LAYOUTS if args.try_layouts else [],
        }
        results["systems"] = {}
        for name, module in [("django-durable", "bench.durable")] + [(p, PEERS[p]) for p in peers]:
            database = name.replace("-", "_")
            server.psql(f"CREATE DATABASE {database}", database="postgres")
            print(f"== {name}", flush=True)
            options = common | {"url": server.database_url(database)}
            try:
                results["systems"][name] = run_system(module, options, work)
            except subprocess.CalledProcessError:
                if name == "django-durable":
                    raise
                # One peer failing (a new release, say) leaves its columns empty.
                print(f"!! {name} failed; see the output above and {work}", flush=True)
        return results
    finally:
        server.stop()


def main() -> None:
    environment.reexec_in_bench_venv()
    args = parse_args()
    from bench import chart, report

    if args.report_only:
        results = json.loads(RESULTS.read_text())
    else:
        results = measure(args)
        results["command"] = shlex.join(["python3", "dev.py", "bench", *sys.argv[1:]])
        if not args.no_docs:  # the results behind docs/ stay those of its last rewrite
            RESULTS.parent.mkdir(exist_ok=True)
            RESULTS.write_text(json.dumps(results, indent=2))
    table = report.render(results)
    print("\n" + table)
    if not args.no_docs:
        (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
        (ROOT / "docs" / "benchmarks.md").write_text(report.page(results, table))
        chart.draw(results, ROOT / "docs" / "img" / "benchmarks.png")
        print("wrote docs/benchmarks.md and docs/img/benchmarks.png")


if __name__ == "__main__":
    main()
