"""One Snakemake run per results folder (ddb.storage.locks.take_run_lock), a dataset root spelled two ways,
and a job whose input another run removed (ddb.scripting.check_inputs)."""

from __future__ import annotations

from pathlib import Path

from helpers import run_snakemake, small_config, write_config

from ddb.paths import run_lock_path
from ddb.storage.locks import LockHolder

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
