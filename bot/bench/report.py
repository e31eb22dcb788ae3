"""The bench's report: every figure, as text lines and as JSON, ending with the one-line summary."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class BenchReport:
    users: int
    rate: float
    machine: str
    app_closed: dict[str, Any]
    app_open: dict[str, Any]
    baseline_closed: dict[str, Any]
    baseline_open: dict[str, Any]
    bookings: int
    redis_cmds_per_event: float
    baseline_redis_cmds_per_event: float
    round_trips_per_event: float
    bytes_per_conversation: int
    bytes_per_event_marker: int
    bytes_per_booking: int
    used_memory_per_user: int
    capacity_note: str
    # Production-shaped (the Procfile's web and worker, users waiting for their answer at LINE):
    line_latency_ms: float
    in_flight: int
    shaped_latency: dict[str, Any]  # LINE answering in line_latency_ms
    shaped_no_latency: dict[str, Any]  # LINE answering at once, the same load

    @property
    def ratio_vs_baseline(self) -> float:
        base = self.baseline_closed["events_per_s"]
        return self.app_closed["events_per_s"] / base if base else 0.0

    @property
    def cpu_ratio_vs_baseline(self) -> float:
        """Baseline CPU per event over the app's: the throughput ratio with other load taken out."""
        app = self.app_closed["worker_cpu_ms_per_event"]
        return self.baseline_closed["worker_cpu_ms_per_event"] / app if app else 0.0

    @property
    def latency_ratio(self) -> float:
        """Events answered per second with LINE's latency ÷ without: what LINE's answer time costs."""
        base = self.shaped_no_latency["events_per_s"]
        return self.shaped_latency["events_per_s"] / base if base else 0.0

    def summary_line(self) -> str:
        slow = self.shaped_latency
        return (
            f"bench: events_per_s={self.app_closed['events_per_s']:.1f} p99_ms={self.app_open['p99_ms']:.1f} "
            f"ratio_vs_baseline={self.ratio_vs_baseline:.2f} redis_cmds_per_event={self.redis_cmds_per_event:.2f} "
            f"bytes_per_conversation={self.bytes_per_conversation} "
            f"latency_events_per_s={slow['events_per_s']:.1f} latency_webhook_p99_ms={slow['webhook_p99_ms']:.1f} "
            f"latency_answer_p99_ms={slow['answer_p99_ms']:.1f} latency_ratio={self.latency_ratio:.2f}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "ratio_vs_baseline": round(self.ratio_vs_baseline, 3),
            "cpu_ratio_vs_baseline": round(self.cpu_ratio_vs_baseline, 3),
            "latency_ratio": round(self.latency_ratio, 3),
            "summary": self.summary_line(),
        }

    def lines(self) -> list[str]:
        def row(name: str, run: dict[str, Any]) -> str:
            return (
                f"  {name:<22} {run['events_per_s']:>8.1f} ev/s  p50 {run['p50_ms']:>6.1f}  p95 {run['p95_ms']:>6.1f}  "
                f"p99 {run['p99_ms']:>6.1f} ms  events {run['events']}  errors {run['errors']}  users done {run['users_done']}"
            )

        def shaped(run: dict[str, Any]) -> list[str]:
            return [
                f"    LINE answering in {run['latency_ms']:g} ms: {run['events_per_s']:.1f} events answered/s "
                f"({run['answered']} of {run['events']} events in {run['seconds']:.1f} s, "
                f"users started {run['users_started']}, done {run['users_done']})",
                f"      webhook HTTP answer p50 {run['webhook_p50_ms']:.1f}  p95 {run['webhook_p95_ms']:.1f}  "
                f"p99 {run['webhook_p99_ms']:.1f} ms; event -> answer at LINE p50 {run['answer_p50_ms']:.1f}  "
                f"p95 {run['answer_p95_ms']:.1f}  p99 {run['answer_p99_ms']:.1f} ms",
                f"      errors {run['errors']}  lost {run['lost']}  sent twice {run['sent_twice']}  "
                f"pushes instead of replies {run['pushes_instead']}",
            ]

        processes = self.shaped_latency.get("processes", {})
        return [
            f"hwbot bench: {self.users} users on {self.machine}",
            f"  {self.capacity_note}",
            row("app closed loop", self.app_closed),
            row(f"app open loop {self.rate:g}/s", self.app_open),
            row("baseline closed loop", self.baseline_closed),
            row(f"baseline open {self.rate:g}/s", self.baseline_open),
            f"  bookings made: {self.bookings} (every closed-loop user: {self.bookings >= self.users})",
            f"  ratio vs baseline (closed-loop events/s): {self.ratio_vs_baseline:.2f}; worker CPU per event "
            f"{self.app_closed['worker_cpu_ms_per_event']:.2f} ms vs baseline "
            f"{self.baseline_closed['worker_cpu_ms_per_event']:.2f} ms (CPU ratio {self.cpu_ratio_vs_baseline:.2f})",
            f"  Redis commands per event (INFO commandstats, scripts' inner commands included): "
            f"{self.redis_cmds_per_event:.2f} (baseline {self.baseline_redis_cmds_per_event:.2f})",
            f"  Redis round trips per event (client-side count; a pipeline or a script call is one): "
            f"{self.round_trips_per_event:.2f}",
            f"  Redis memory: {self.bytes_per_conversation} B per active conversation (MEMORY USAGE at the "
            f"confirmation card), {self.bytes_per_event_marker} B per processed-event marker, "
            f"{self.bytes_per_booking} B per booking, {self.used_memory_per_user} B used_memory per booked user",
            f"  production-shaped: the Procfile's web `{processes.get('web', {}).get('command', '?')}` and worker "
            f"`{processes.get('worker', {}).get('command', '?')}`, {self.in_flight} users in flight, each "
            f"waiting for its answer at LINE:",
            *shaped(self.shaped_latency),
            *shaped(self.shaped_no_latency),
            f"  latency_ratio (events/s with LINE at {self.line_latency_ms:g} ms / at once): {self.latency_ratio:.2f}",
        ]


def report_text(report: BenchReport) -> str:
    return "\n".join(report.lines() + [report.summary_line()])
