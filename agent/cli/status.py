"""``oomguard status``: the memory breakdown of a container, a process or a captured tree."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from ..config import Config
from ..diagnosis import snapshot_verdict
from ..errors import ConfigError
from ..oomkills import read_kills
from ..procfs import read_processes
from ..sample import Sample, SampleSource
from ..status import status_document
from .format import human_bytes

__all__ = ["add_parser", "render_table", "run"]


def add_parser(commands: Any) -> None:
    """Register the ``status`` subcommand."""
    parser = commands.add_parser("status", help="print the memory breakdown")
    parser.add_argument("--json", action="store_true", help="print the /status JSON document")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--pid", type=int, help="another process (its cgroup via /proc/PID/root)")
    target.add_argument(
        "--root",
        type=Path,
        help="a captured tree holding proc/self/cgroup, proc/self/mountinfo, sys/fs/cgroup",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Take one sample of the target and print it."""
    if args.root is not None:
        if not args.root.is_dir():
            print(f"oomguard status: --root {args.root} is not a directory", file=sys.stderr)
            return 2
        source = SampleSource(args.root)
    elif args.pid is not None:
        if not Path(f"/proc/{args.pid}").is_dir():
            print(f"oomguard status: no process {args.pid}", file=sys.stderr)
            return 2
        root = Path(f"/proc/{args.pid}/root")
        if not os.access(root / "sys", os.R_OK):
            # No ptrace access to its mount namespace: read through our own, which
            # is right whenever the two share it (same container, or the host).
            print(f"oomguard status: cannot enter {root}; reading cgroup files via /", file=sys.stderr)
            root = Path("/")
        source = SampleSource(root, args.pid, proc_root=Path("/proc"))
    else:
        source = SampleSource()
    sample = source.take()
    pids = source.cgroup_reader.procs() if source.cgroup_reader is not None else []
    processes = read_processes(pids, source.proc_root) if args.root is None else []
    document = status_document(
        sample,
        processes,
        cgroup_unavailable=source.unavailable_reason,
        verdict=snapshot_verdict(sample),
        oom_kills=_recorded_kills(sample) if args.root is None else (),
    )
    if args.json:
        json.dump(document, out, indent=2)
        out.write("\n")
    else:
        out.write(render_table(sample, document))
    return 0


def _recorded_kills(sample: Sample) -> list[dict[str, object]]:
    """Worker OOM kills of this cgroup recorded on the dump volume (``OOMGUARD_DUMP_DIR``)."""
    try:
        dump_dir = Config.from_env(os.environ).dump_dir
    except ConfigError:
        return []
    cgroup = sample.cgroup.directory if sample.cgroup is not None else None
    return [k for k in read_kills(dump_dir) if k.get("cgroup") == cgroup]


def render_table(sample: Sample, document: dict[str, Any]) -> str:
    """The human-readable breakdown."""
    mem = document["memory"]
    cg = sample.cgroup
    rows: list[tuple[str, str]] = []
    if cg is None:
        rows.append(("cgroup", f"none ({document['cgroup_unavailable']}): host memory is the limit"))
    else:
        rows.append(("cgroup", f"v{cg.version}  {cg.directory}"))
    limit = mem["limit_bytes"]
    if limit is None:
        rows.append(("limit", "unknown"))
    elif sample.limit_from_host:
        rows.append(("limit", f"{human_bytes(limit)}  (host RAM: no cgroup limit)"))
    else:
        rows.append(("limit", f"{human_bytes(limit)}  (from {mem['limit_source']})"))

    def pct(value: int | None) -> str:
        return f"  {100 * value / limit:5.1f}% of limit" if value is not None and limit else ""

    rows += [
        ("usage", human_bytes(mem["usage_bytes"]) + pct(mem["usage_bytes"])),
        ("working set", human_bytes(mem["working_set_bytes"]) + pct(mem["working_set_bytes"])),
        ("headroom", human_bytes(mem["headroom_bytes"])),
        ("anon", human_bytes(mem["anon_bytes"])),
        (
            "file",
            f"{human_bytes(mem['file_bytes'])}  (active {human_bytes(mem['active_file_bytes'])}, "
            f"inactive {human_bytes(mem['inactive_file_bytes'])})",
        ),
        ("shmem", human_bytes(mem["shmem_bytes"])),
        ("slab", human_bytes(mem["slab_bytes"])),
        ("kernel stack", human_bytes(mem["kernel_stack_bytes"])),
        ("sock", human_bytes(mem["sock_bytes"])),
    ]
    proc = sample.process
    rows.append(
        (
            f"process {proc.pid}",
            f"RSS {human_bytes(proc.rss_bytes)} (anon {human_bytes(proc.anon_bytes)}, "
            f"file {human_bytes(proc.file_bytes)}, shmem {human_bytes(proc.shmem_bytes)}), "
            f"threads {proc.threads if proc.threads is not None else '-'}, "
            f"fds {proc.fds if proc.fds is not None else '-'}",
        )
    )
    if cg is not None:
        ev = cg.events
        events = ", ".join(
            f"{k} {v}"
            for k, v in (
                ("high", ev.high),
                ("max", ev.max),
                ("oom", ev.oom),
                ("oom_kill", ev.oom_kill),
            )
            if v is not None
        )
        rows.append(("events", events or "-"))
        if cg.pressure is not None:
            p = cg.pressure
            rows.append(("pressure", f"some avg10 {p.some_avg10:.2f}%, full avg10 {p.full_avg10 or 0:.2f}%"))
        if cg.pids_current is not None:
            rows.append(("pids", f"{cg.pids_current} / {cg.pids_max if cg.pids_max is not None else 'max'}"))
        if cg.unreadable:
            rows.append(("unreadable", ", ".join(cg.unreadable)))
    verdict = document.get("verdict")
    if verdict:
        rows.append(("verdict", f"{verdict['kind']} ({verdict['confidence']:.2f}): {verdict['summary']}"))
        rows += [("", f"- {line}") for line in verdict["evidence"]]
    for kill in document.get("oom_kills") or ():
        victims = ", ".join(str(pid) for pid in kill.get("pids") or ()) or "?"
        evidence = ", ".join(kill.get("evidence") or ()) or "none"
        rows.append(("oom kill", f"pid {victims} (oom_kill {kill.get('oom_kill')}); evidence: {evidence}"))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
    processes = document["processes"]
    if processes:
        lines += ["", f"{'PID':>7}  {'RSS':>10}  {'ANON':>10}  {'THREADS':>7}  AGENT  NAME"]
        for p in processes:
            agent = {True: "yes", False: "no", None: "?"}[p["runs_agent"]]
            lines.append(
                f"{p['pid']:>7}  {human_bytes(p['rss_bytes']):>10}  {human_bytes(p['anon_bytes']):>10}  "
                f"{p['threads'] if p['threads'] is not None else '-':>7}  {agent:<5}  {p['name']}"
            )
    return "\n".join(lines) + "\n"
