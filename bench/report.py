"""The results as one Markdown table (printed and written to docs/benchmarks.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OURS = "django-durable"
PEERS = [
    ("django-tasks-db", "django-tasks-db"),
    ("procrastinate", "Procrastinate"),
    ("dbos", "DBOS"),
]


def _get(system: dict | None, *path: str) -> float | None:
    value: Any = system
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _num(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _ratio(ours: float | None, theirs: float | None) -> str:
    return "—" if not ours or not theirs else f"{ours / theirs:.2f}x"


def _met(ok: bool | None) -> str:
    return "—" if ok is None else ("**met**" if ok else "**missed**")


def _rows(results: dict) -> list[list[str]]:
    systems = results["systems"]
    ours = systems[OURS]
    peers = [(label, systems.get(key)) for key, label in PEERS]
    present = [(label, s) for label, s in peers if s]
    rows = []

    def compare(label: str, path: tuple[str, ...], digits: int, target: str, ok: Any) -> None:
        mine = _get(ours, *path)
        values = [_num(_get(s, *path), digits) for _, s in peers]
        ratios = " · ".join(
            f"{name} {_ratio(mine, _get(s, *path))}"
            for name, s in present
            if _get(s, *path) is not None
        )
        rows.append([label, _num(mine, digits), *values, ratios or "—", target, _met(ok)])

    one = _get(ours, "steps_1", "runs_per_s")
    peer_one = [v for _, s in present if (v := _get(s, "steps_1", "runs_per_s"))]
    compare(
        "1-step jobs/s (higher is better)",
        ("steps_1", "runs_per_s"),
        0,
        "≥ 2x the fastest peer",
        one >= 2 * max(peer_one) if one and peer_one else None,
    )
    ten = _get(ours, "steps_10", "runs_per_s")
    dbos_ten = _get(systems.get("dbos"), "steps_10", "runs_per_s")
    compare(
        "10-step jobs/s",
        ("steps_10", "runs_per_s"),
        0,
        "≥ 2x DBOS",
        ten >= 2 * dbos_ten if ten and dbos_ten else None,
    )
    compare("enqueue one by one, jobs/s", ("enqueue_each_per_s",), 0, "", None)
    compare("enqueue in one transaction, jobs/s", ("steps_1", "enqueue_bulk_per_s"), 0, "", None)
    p50, p99 = _get(ours, "pickup", "p50_ms"), _get(ours, "pickup", "p99_ms")
    compare("pickup latency p50, ms", ("pickup", "p50_ms"), 1, "< 10 ms", p50 < 10 if p50 else None)
    compare("pickup latency p99, ms", ("pickup", "p99_ms"), 1, "< 50 ms", p99 < 50 if p99 else None)
    cpu = _get(ours, "steps_1", "pg_cpu_ms")
    peer_cpu = [v for _, s in present if (v := _get(s, "steps_1", "pg_cpu_ms"))]
    compare(
        "PostgreSQL CPU per 1-step job, ms",
        ("steps_1", "pg_cpu_ms"),
        3,
        "≤ 0.5x the best peer",
        cpu <= 0.5 * min(peer_cpu) if cpu and peer_cpu else None,
    )
    compare("PostgreSQL CPU per 10-step job, ms", ("steps_10", "pg_cpu_ms"), 3, "", None)
    commits = _get(ours, "steps_1", "commits_per_run")
    compare(
        "commits per 1-step job",
        ("steps_1", "commits_per_run"),
        2,
        "≤ 0.5",
        commits <= 0.5 if commits is not None else None,
    )
    compare("commits per 10-step job", ("steps_10", "commits_per_run"), 2, "", None)
    compare("statements per 1-step job", ("steps_1", "statements_per_run"), 1, "", None)
    compare("statements per 10-step job", ("steps_10", "statements_per_run"), 1, "", None)
    compare("WAL bytes per 1-step job", ("steps_1", "wal_bytes_per_run"), 0, "", None)
    compare("WAL bytes per 10-step job", ("steps_10", "wal_bytes_per_run"), 0, "", None)

    blank = ["—"] * len(peers)
    ceiling = results["ceiling"]
    clients = str(ceiling["workers_clients"])
    claim_tps = ceiling["claim"].get(clients)
    rows.append(
        [
            f"1-step jobs/s ÷ pgbench claim-and-update at {clients} clients",
            _num(one),
            *blank,
            f"ceiling {_num(claim_tps)} tps: {_ratio(one, claim_tps)}",
            "",
            "—",
        ]
    )
    checkpoint = ours.get("checkpoint_ms")
    insert_ms = 1000 / ceiling["insert"]["1"]
    rows.append(
        [
            "one step's checkpoint, ms",
            _num(checkpoint, 3),
            *blank,
            f"pgbench INSERT {insert_ms:.3f} ms: {_ratio(checkpoint, insert_ms)}",
            "≤ 2x one INSERT",
            _met(checkpoint <= 2 * insert_ms if checkpoint else None),
        ]
    )
    claim = ours.get("claim")
    if claim:
        rows.append(
            [
                f"claim of one run, ms: empty → {claim['finished']:,} finished",
                f"{claim['empty_ms']:.3f} → {claim['full_ms']:.3f}",
                *blank,
                _ratio(claim["full_ms"], claim["empty_ms"]),
                "≤ 1.2x empty",
                _met(claim["full_ms"] <= 1.2 * claim["empty_ms"]),
            ]
        )
    memory = ours.get("memory")
    if memory:
        before = ", ".join(f"{v:.0f}" for v in memory["rss_before_mib"])
        after = ", ".join(f"{v:.0f}" for v in memory["rss_after_mib"])
        rows.append(
            [
                f"worker RSS over {memory['runs']:,} runs, MiB per process",
                f"{before} → {after}",
                *blank,
                f"{memory['growth_pct']:+.1f}%",
                "< 10% growth",
                _met(memory["growth_pct"] < 10),
            ]
        )
    return rows


def render(results: dict) -> str:
    header = ["Measure", OURS, *(label for _, label in PEERS), "ours ÷ other", "Target", "Met"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(results)]
    return "\n".join(lines)


def _clients(count: str) -> str:
    return "1 client" if count == "1" else f"{count} clients"


def _ceiling_table(results: dict) -> str:
    ceiling = results["ceiling"]
    clients = [c for c in ceiling["insert"]]
    lines = [
        "| pgbench, transactions/s | " + " | ".join(map(_clients, clients)) + " |",
        "|---|" + "---:|" * len(clients),
        "| single-row INSERT | " + " | ".join(_num(ceiling["insert"][c]) for c in clients) + " |",
        "| `FOR UPDATE SKIP LOCKED` claim-and-update | "
        + " | ".join(_num(ceiling["claim"][c]) for c in clients)
        + " |",
    ]
    return "\n".join(lines)


def _layouts(results: dict) -> str:
    ours = results["systems"][OURS]
    lines = [
        f"- {system['version']}: {system['layout']}; bulk enqueue: {system['bulk_note']}"
        for system in results["systems"].values()
    ]
    text = "\n".join(lines)
    if ours.get("layouts"):
        text += (
            "\n\nOther django-durable layouts (processes x threads), 1-step jobs/s: "
            + ", ".join(f"{layout} {rate:,.0f}" for layout, rate in ours["layouts"].items())
            + ". Each is a single drain after the measurements above, with a new set of"
            " workers; on 2 cores they move by a third from run to run, so read them as a"
            " ranking, not against the table. One process leaves a core to PostgreSQL, which"
            " is why 1x8 tends to lead here; the table uses 2 processes, the budget every"
            " peer got."
        )
    return text


def _load(machine: dict) -> str:
    if "load" not in machine:
        return ""
    return (
        f"Load average when the run began: {machine['load']} (above 0 means other work "
        "shared the cores)."
    )


def _pruning() -> str:
    """The last ``bench/prune.py`` figures, if it was run (its own results file)."""
    path = Path(__file__).parent / "results" / "prune.json"
    if not path.exists():
        return ""
    prune = json.loads(path.read_text())
    without, during = prune["without"], prune["while"]
    rate, ratio = prune["runs_per_second"], during["p99"] / without["p99"]
    quiet = f"{without['p50']:.1f} / {without['p99']:.1f}"
    pruning = f"{during['p50']:.1f} / {during['p99']:.1f}"
    seconds = prune.get("pause", 0)
    pause = f"`--pause {seconds}` seconds between them" if seconds else "one after another"
    return f"""
## Pruning

`{prune["command"]}` (load average when it began: {prune["load"]}): {prune["runs"]:,}
completed runs (3 journal entries and a log line each) deleted by `manage.py prune_runs`
in batches of {prune["batch_size"]} families, {pause}, while 2 workers of 8 threads drain
1-step runs enqueued at {prune["rate"]:.0f}/s. Smaller batches and a pause trade prune
rate for the drain's latency.

| Measure | Figure | Target | Met |
|---|---|---|---|
| prune rate, runs/s | {rate:,.0f} | ≥ 5,000 | {_met(rate >= 5000)} |
| drain's claim latency p50 / p99 without pruning, ms | {quiet} | | |
| drain's claim latency p50 / p99 while pruning, ms | {pruning} | | |
| p99 while pruning ÷ p99 without | {ratio:.2f}x | ≤ 1.5x | {_met(ratio <= 1.5)} |
"""


def _async_io() -> str:
    """The last ``bench/async_io.py`` figures, if it was run (its own results file)."""
    path = Path(__file__).parent / "results" / "async_io.json"
    if not path.exists():
        return ""
    figures = json.loads(path.read_text())
    rows = "\n".join(
        f"| {row['system']} | {row['runs']:,} | {row['seconds']:.2f} | "
        f"{row['worker_cpu_seconds']:.2f} | {row['worker_peak_rss_mib']:.0f} | "
        f"{row['connections']} | {row['layout']} |"
        for row in figures["results"]
    )
    return f"""
## Async jobs

`{figures["command"]}` (load average when it began: {figures["load"]}): one worker
process, runs of one step awaiting `asyncio.sleep({figures["await_seconds"]:g})` enqueued in
one transaction; time from that commit to the last completion, the worker's CPU time over
it, its peak resident memory, and the most connections to the database at once. Where the
worker's CPU time is close to the completion time, the drain is bound by one core: each
process runs Python on one at a time.

| System | Runs | Completed in, s | Worker CPU, s | Peak RSS, MiB | Connections | Layout |
|---|---:|---:|---:|---:|---:|---|
{rows}
"""


def page(results: dict, table: str) -> str:
    machine = results["machine"]
    return f"""# Benchmarks

django-durable next to its peers and next to what PostgreSQL alone allows, all on one
throwaway PostgreSQL server in one run. Produced by `bench/run.py`; see
`bench/README.md` for what each figure measures and how.

Command: `{results.get("command", "python3 dev.py bench")}`

Machine: {machine["cpu"]}, {machine["cores"]} cores, {machine["ram"]} RAM, {machine["os"]};
PostgreSQL {machine["postgresql"]} (fsync on, on 127.0.0.1); Python {machine["python"]}.
{_load(machine)}

{table}

"ours ÷ other" divides django-durable's figure by the other system's (for jobs/s higher is
better; for latency and CPU lower is better). "—": not measured for that system (the
task queues have no steps, so their 10-step job is left out rather than faked with 10
chained tasks). PostgreSQL CPU per job is the server processes' user + system CPU time
(`/proc/PID/stat`, exited backends included) from the start of the enqueue to the end of
the drain, divided by the jobs: enqueue and execution together.

## Layouts and versions

Every system had the same budget on the 2 cores: the same number of worker processes,
each running as many jobs at once as django-durable's threads where the system can
(django-tasks-db's `db_worker` runs one at a time).

{_layouts(results)}

## The database's own limit

{_ceiling_table(results)}

![Throughput and pickup latency](img/benchmarks.png)
{_pruning()}{_async_io()}
Figures from a 2-core machine are noisy (other work shares it): compare ratios, and rerun
with `--rounds 3` for medians.
"""
