"""One Snakemake run per results folder (ddb.storage.locks.take_run_lock), a dataset root spelled two ways,
and a job whose input another run removed (ddb.scripting.check_inputs)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import REPO

from ddb.errors import DDBError
from ddb.paths import run_lock_path
from ddb.storage.locks import LockHolder, release_run_lock, take_run_lock

# a run elsewhere: it takes the results folder's lock from its own working directory, says so, and holds it
# until the file `go` appears (or dies where the test kills it)
HOLDER = """
    import os, sys, time
    from pathlib import Path
    from ddb.storage.locks import take_run_lock

    results, go = sys.argv[1], Path(sys.argv[2])
    take_run_lock(results)
    print("holding", flush=True)
    deadline = time.monotonic() + 120
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
"""


@pytest.fixture
def holder(tmp_path):
    """Start a process holding the lock of ``results`` (as its working directory spells it)."""
    started = []

    def start(results: str, workdir: Path) -> SimpleNamespace:
        workdir.mkdir(parents=True, exist_ok=True)
        go = tmp_path / f"go-{len(started)}"
        process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLDER), results, str(go)], cwd=workdir,
                                   env={**os.environ, "PYTHONPATH": str(REPO / "workflow")},
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = process.stdout.readline()
        assert line == "holding\n", line + process.stdout.read()
        started.append(SimpleNamespace(process=process, go=go, workdir=workdir))
        return started[-1]

    yield start
    for held in started:
        held.go.touch()
        held.process.wait(timeout=60)


def test_a_second_run_on_the_folder_stops_naming_the_first_however_the_folder_is_spelled(tmp_path, holder,
                                                                                         monkeypatch):
    first = holder("project/results", tmp_path / "checkout-a")  # relative to its own checkout
    results = tmp_path / "checkout-a" / "project" / "results"
    monkeypatch.chdir(tmp_path)
    for spelling in (str(results), "checkout-a/project/results", "checkout-a/project/../project/results/"):
        with pytest.raises(DDBError) as error:
            take_run_lock(spelling)
        message = str(error.value)
        assert message.startswith(f"{run_lock_path(spelling)}: another snakemake run uses this results folder: "
                                  f"pid {first.process.pid} on host {socket.gethostname()}, "
                                  f"in {tmp_path / 'checkout-a'}, started ")
        assert "fix: wait for it to end, or stop it" in message and "config key `results`" in message
    assert LockHolder.parse(run_lock_path(results).read_text()).pid == first.process.pid  # left as it was

    first.go.touch()
    assert first.process.wait(timeout=60) == 0
    assert not run_lock_path(results).exists()  # released when its process ended
    take_run_lock(results)
    try:
        assert LockHolder.parse(run_lock_path(results).read_text()).pid == os.getpid()
    finally:
        release_run_lock(results)
    assert not run_lock_path(results).exists()


def test_the_lock_of_a_killed_run_on_this_host_is_taken_over(tmp_path, holder, caplog):
    results = tmp_path / "results"
    killed = holder(str(results), tmp_path)
    killed.process.send_signal(signal.SIGKILL)
    killed.process.wait(timeout=60)
    assert LockHolder.parse(run_lock_path(results).read_text()).pid == killed.process.pid  # left behind

    with caplog.at_level(logging.WARNING, logger="ddb"):
        take_run_lock(results)
    try:
        assert LockHolder.parse(run_lock_path(results).read_text()).pid == os.getpid()
        assert f"taking over the lock of a run that ended without releasing it (pid {killed.process.pid} " in caplog.text
    finally:
        release_run_lock(results)


def test_a_lock_left_by_another_host_is_refused_with_how_to_remove_it(tmp_path):
    lock = run_lock_path(tmp_path)
    lock.write_text("pid 4242 on host node-17 (SLURM job 991), in /home/a/ddb, started 2026-01-01T10:00:00+00:00\n")
    with pytest.raises(DDBError) as error:
        take_run_lock(tmp_path)
    assert str(error.value) == (
        f"{lock}: a snakemake run on host node-17 holds this results folder (pid 4242 on host node-17 (SLURM job "
        f"991), in /home/a/ddb, started 2026-01-01T10:00:00+00:00); from host {socket.gethostname()} it cannot be "
        "told whether it still runs\n  fix: if it no longer runs (on node-17: `ps -p 4242`; `squeue -j 991`), "
        f"delete {lock} and rerun")
    assert "node-17" in lock.read_text()  # left for the person to judge




def test_one_root_spelled_absolute_or_relative_is_one_root(tmp_path, monkeypatch):
    from ddb.datasets.roots import same_root

    (tmp_path / "data" / "waterbirds").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    assert same_root("data/waterbirds", str(tmp_path / "data" / "waterbirds"))
    assert same_root(str(tmp_path / "data" / "waterbirds") + "/", "./data/waterbirds")
    assert same_root("link/waterbirds", "data/waterbirds")
    assert same_root("waterbirds", str(tmp_path / "data" / "waterbirds"), workdir=tmp_path / "data")
    assert not same_root("data/waterbirds", "data/celeba")
    assert not same_root("data/waterbirds", str(tmp_path / "elsewhere" / "waterbirds"))


def test_a_step_whose_input_was_removed_names_it_and_the_rule_that_makes_it(tmp_path, monkeypatch, capfd):
    import torch
    from snakemake.iocontainers import InputFiles

    from ddb.scripting import run_step

    # run_step is made for a one-job process: it redirects these and sets up logging; put them back after
    monkeypatch.setattr(sys, "stdout", sys.stdout)
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    monkeypatch.setattr(logging.getLogger(), "handlers", list(logging.getLogger().handlers))
    monkeypatch.setattr(logging.getLogger("ddb"), "handlers", list(logging.getLogger("ddb").handlers))
    monkeypatch.chdir(tmp_path)
    run = Path("results/demo")
    masks = [run / "masks" / "landbird" / f"shard-{n}.tar" for n in (0, 1)]
    embeds = run / "textual_inversion" / "waterbird" / "learned_embeds.safetensors"
    for path in masks:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    inputs = InputFiles([str(p) for p in [*masks, embeds]])
    inputs._set_name("masks", 0, 2)
    inputs._set_name("embeds", 2)
    calls = []

    @run_step
    def step(snakemake):
        calls.append(snakemake)

    fake = SimpleNamespace(log=[str(tmp_path / "logs" / "inpaint.log")], threads=1, resources=SimpleNamespace(),
                           input=inputs, params=[], wildcards={}, rule="inpaint")
    threads = torch.get_num_threads()
    with pytest.raises(SystemExit) as exit_:
        step(fake)
    torch.set_num_threads(threads)
    assert exit_.value.code == 1 and calls == []
    assert (f"ddb: {embeds}: input embeds of rule inpaint does not exist\n  fix: made by rule textual_inversion; "
            "rerun snakemake (another run on the same results folder may have removed it)") in capfd.readouterr().err

    embeds.parent.mkdir(parents=True)
    embeds.write_bytes(b"")
    step(fake)
    torch.set_num_threads(threads)
    assert len(calls) == 1
