"""The results folder's run lock through the snakemake CLI: a dry run and the holder's own jobs pass, a second
run stops (the lock itself: tests/unit/test_storage_locks.py)."""

from __future__ import annotations

from pathlib import Path

from helpers import run_snakemake, small_config, write_config

from ddb.paths import run_lock_path
from ddb.storage.locks import LockHolder

from test_storage_locks import holder  # noqa: F401 (a fixture: a run elsewhere holding the lock)


def test_a_dry_run_and_the_holders_jobs_pass_beside_a_run_and_a_second_run_stops(tmp_path, holder):
    workdir = tmp_path / "checkout-b"
    workdir.mkdir()
    write_config(workdir, {**small_config(), "results": str(tmp_path / "shared")})
    manifest = str(tmp_path / "shared" / "demo" / "data" / "manifest.parquet")
    first = holder("shared", tmp_path)  # another checkout's run, the folder spelled relative to it

    dry = run_snakemake(workdir, "-n", manifest)
    assert "prepare_dataset" in dry.stdout + dry.stderr
    refused = run_snakemake(workdir, "--cores", "1", manifest, check=False)
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0 and not Path(manifest).exists()
    assert (f"{tmp_path / 'shared' / '.ddb-run.lock'}: another snakemake run uses this results folder: "
            f"pid {first.process.pid} on host ") in output, output[-3000:]

    # a job of the holder's, as the SLURM executor starts it on a node (snakemake_interface_executor_plugins
    # RealExecutor.format_job_exec: the spawned-job arguments of snakemake.spawn_jobs, then --mode remote)
    run_snakemake(workdir, "--cores", "1", "--force", "--no-hooks", "--nolock", "--ignore-incomplete",
                  "--mode", "remote", manifest)
    assert Path(manifest).exists()
    assert LockHolder.parse(run_lock_path(tmp_path / "shared").read_text()).pid == first.process.pid
