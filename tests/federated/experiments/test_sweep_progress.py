"""The sweep's progress display: a bar on a terminal, and one line per tenth of the sweep's rounds
when stderr is a log file or a pipe (as ``laser run`` does), not a bar whose every redraw floods
the log; ``laser sweep -q`` shows neither (issue 29, item 5)."""

import io
import subprocess
import sys
from pathlib import Path

from federated.experiments import sweep as sweep_module
from federated.experiments.plan import plan_sweep
from federated.experiments.sweep import PointResult

ROOT = Path(__file__).resolve().parents[3]
DIGITS = str(ROOT / "configs" / "digits_laser.yaml")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def counts(running: int = 1) -> dict:
    return {"done": 0 if running else 6, "failed": 0, "running": running}


def test_a_log_gets_one_line_per_tenth_of_the_rounds():
    log = io.StringIO()
    progress = sweep_module._Progress(total=600, done=0, points=6, stream=log)
    for _ in range(600):  # a round at a time
        progress.advance(1, **counts())
    progress.advance(0, **counts(running=0))  # the last point ends after its last round
    progress.advance(0, **counts(running=0))  # (the loop's polls go on: nothing more)
    progress.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 10 and "\r" not in log.getvalue()
    assert lines[0].startswith("sweep: 60/600 rounds (10%)") and lines[8].startswith("sweep: 540/600")
    assert lines[-1].startswith("sweep: 600/600 rounds (100%), 6 of 6 points done, 0 failed, 0 running")


def test_uneven_steps_and_a_resumed_sweep_still_give_at_most_a_line_per_tenth():
    log = io.StringIO()
    progress = sweep_module._Progress(total=1000, done=250, points=4, stream=log)  # a quarter done before
    for step in range(75):
        progress.advance(10, **counts(running=int(step < 74)))  # the poll sees 10 rounds at a time
    progress.close()
    lines = log.getvalue().splitlines()
    assert [line.split(" rounds")[0] for line in lines] == [
        f"sweep: {n:,}/1,000" for n in (300, 400, 500, 600, 700, 800, 900, 1000)
    ]


def test_a_log_gets_a_line_for_a_failed_point_and_none_for_each_finished_one():
    point = plan_sweep([DIGITS], ["seed=0"], "x")[0]
    log = io.StringIO()
    progress = sweep_module._Progress(total=10, done=0, points=2, stream=log)
    progress.point(PointResult(point, "finished", metric={"test_accuracy": 0.9}))
    progress.point(PointResult(point, "failed", error="exit status 1: boom"))
    assert log.getvalue().splitlines() == [f"failed: {point.name}: exit status 1: boom"]


def test_a_terminal_gets_the_bar_and_quiet_gets_nothing():
    terminal = Terminal()
    progress = sweep_module._Progress(total=100, done=0, points=1, stream=terminal)
    for _ in range(100):
        progress.advance(1, **counts())
    progress.close()
    assert "\r" in terminal.getvalue() and "100/100" in terminal.getvalue()  # tqdm's redraws
    for stream in (io.StringIO(), Terminal()):
        quiet = sweep_module._Progress(total=100, done=0, points=1, enabled=False, stream=stream)
        for _ in range(100):
            quiet.advance(1, **counts())
        quiet.close()
        assert stream.getvalue() == ""


def test_run_sweep_into_a_log_writes_lines_not_a_bar(tmp_path, monkeypatch, capsys):
    """The whole loop, its points' runs replaced by a stand-in that writes their history a round at
    a time (the display reads it as a real run's): stderr, not a terminal under pytest, gets no
    carriage return and no more than a line per tenth."""
    out = tmp_path / "sweep"
    points = plan_sweep([DIGITS], ["seed=0,1,2,3"], out, ["rounds=20"])

    def run_point(point, mode, launcher, stopping):
        point.path.mkdir(parents=True, exist_ok=True)
        with open(point.path / "history.jsonl", "w") as history:
            for t in range(20):
                history.write(f'{{"round": {t}}}\n')
                history.flush()
                sweep_module.time.sleep(0.03)
        return PointResult(point, "finished", metric={"test_accuracy": 0.5})

    monkeypatch.setattr(sweep_module, "_run_point", run_point)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    result = sweep_module.run_sweep(points, out, jobs=2, progress=True)
    assert [r.status for r in result.results] == ["finished"] * 4
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err and 1 <= len(lines) <= 10
    assert lines[-1].startswith("sweep: 80/80 rounds (100%), 4 of 4 points done, 0 failed, 0 running")


def test_laser_sweep_takes_q_for_quiet():
    result = subprocess.run(
        [sys.executable, "-m", "federated.cli", "sweep", "--help"], capture_output=True, text=True, timeout=60
    )
    assert "-q, --quiet" in result.stdout
