"""Nothing lost: a generation shard killed mid-way, and its resumption.

- A real `snakemake` whose `inpaint` job is killed with SIGKILL (the whole process group, as a lost
  node or an OOM kill would) leaves no output that Snakemake or a reader takes as finished; the next run
  redoes that shard and its dependents only, resumes from the images it had finished, and packs the
  same bytes as an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from helpers import REPO, SMALL_DEMO, planned_jobs, run_snakemake, small_config, write_config
from _reliability import changed_files, snapshot
from test_storage_checkpoints import finished_checkpoints


SHARD = "results/demo/inpaint/landbird_to_waterbird/shard-0"

# 25 denoising steps, one image per batch: about a second per image, so the test can kill the job
# between two images (the tiny model is the same as the demo's; only the pace changes)
SLOW_INPAINTING = {**SMALL_DEMO["inpainting"], "steps": 25, "batch_size": 1}


def start_snakemake(workdir: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
               str(workdir), *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)  # its own process group: the job dies with it


def test_killed_inpaint_job_redoes_its_shard_alone_and_resumes(demo_copy):
    write_config(demo_copy, small_config(inpainting=SLOW_INPAINTING))
    tar, index = demo_copy / f"{SHARD}.tar", demo_copy / f"{SHARD}.parquet"
    partial = Path(f"{tar}.partial")
    tar.unlink()
    index.unlink()
    before = snapshot(demo_copy)

    process = start_snakemake(demo_copy, "--cores", "1", str(tar.relative_to(demo_copy)))
    deadline = time.monotonic() + 300
    while not finished_checkpoints(partial):
        assert process.poll() is None, process.stdout.read().decode()[-4000:]
        assert time.monotonic() < deadline, "the inpaint job wrote no checkpoint in 5 minutes"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    time.sleep(0.5)

    # nothing that looks finished: neither output exists; every other artifact is untouched
    assert not tar.exists() and not index.exists()
    done = len(finished_checkpoints(partial))
    assert 1 <= done < 3, done
    after = snapshot(demo_copy)
    outside_shard = {k: v for k, v in after.items() if not k.startswith(f"{SHARD}.tar.partial/")
                     and not Path(k).name.startswith(f".{Path(SHARD).name}.") and k != "results/.ddb-run.lock"}
    assert changed_files(before, outside_shard) == {"added": [], "removed": [], "modified": []}
    # and its hold on the results folder, which the next run on this host takes over
    assert (demo_copy / "results/.ddb-run.lock").read_text().startswith(f"pid {process.pid} on host ")

    # the killed Snakemake left its lock: the user is told to unlock, then reruns
    locked = run_snakemake(demo_copy, "--cores", "1", check=False)
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr
    run_snakemake(demo_copy, "--unlock")

    # The one gap atomic renames leave: the tar renamed into place, the job killed before its index
    # was. Snakemake marked the job's outputs incomplete when it started it; by itself it would stop
    # with IncompleteFilesException, the workflow profile (profiles/default: rerun-incomplete) redoes it.
    tar.write_bytes(b"a shard renamed into place just before the kill")
    strict = run_snakemake(demo_copy, "-n", "--workflow-profile", "none", check=False)
    assert strict.returncode != 0 and "incomplete" in (strict.stdout + strict.stderr).lower()
    # only the lost shard and what depends on it (modification times: this test slowed inpainting
    # down through the config, which otherwise would make every inpaint shard stale)
    assert planned_jobs(demo_copy, "--rerun-triggers", "mtime") == {
        "inpaint": 1, "ig_score": 1, "prune": 1, "retrain": 1, "evaluate": 1, "all": 1}

    resumed = run_snakemake(demo_copy, "--cores", "1", str(tar.relative_to(demo_copy)))
    assert f"taking over the lock of a run that ended without releasing it (pid {process.pid} " in resumed.stdout + resumed.stderr
    assert not (demo_copy / "results/.ddb-run.lock").exists()
    log = (demo_copy / "results/logs/inpaint/demo/landbird_to_waterbird/shard-0.log").read_text()
    assert f"resuming, {done} of 3 samples already done" in log
    assert not partial.exists()
    resumed_tar, resumed_index = tar.read_bytes(), pd.read_parquet(index)

    run_snakemake(demo_copy, "--cores", "1", "--force", str(tar.relative_to(demo_copy)))
    assert "resuming" not in (demo_copy / "results/logs/inpaint/demo/landbird_to_waterbird/shard-0.log").read_text()
    assert tar.read_bytes() == resumed_tar
    pd.testing.assert_frame_equal(pd.read_parquet(index), resumed_index, check_exact=True)
