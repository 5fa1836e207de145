"""The job record a rule script takes (ddb.jobs.Job), read from Snakemake's own ``snakemake`` object by
ddb.scripting.run_step; the job's fingerprint travels in it, never in a module global."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ddb.jobs import Named, files_of


def snakemake_object(tmp_path: Path, *, runtime: int | None = 30):
    """What Snakemake gives the inpaint rule's script: named lists with named and unnamed entries."""
    from snakemake.iocontainers import InputFiles, Log, OutputFiles, Params, ResourceList, Snakemake, Wildcards

    run = tmp_path / "results" / "demo"
    manifest, masks = run / "data" / "manifest.parquet", run / "masks" / "landbird" / "shard-0.tar"
    for path in (manifest, masks):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    inputs = InputFiles([str(manifest), str(masks)])
    inputs._set_name("manifest", 0)
    inputs._set_name("masks", 1, 2)  # an input function's list of one
    inputs._set_name("low_loss", 2, 2)  # an input function's empty list: the optional input left out
    outputs = OutputFiles([str(run / "inpaint" / "shard-0.tar"), str(run / "inpaint" / "shard-0.parquet")])
    outputs._set_name("tar", 0)
    outputs._set_name("index", 1)
    resources = {"_cores": 1, "cpu_threads": 1} | ({"runtime": runtime} if runtime else {})
    return Snakemake(inputs, outputs, Params(fromdict={"cfg": {"inpainting": {"steps": 2}}, "seed": 7}),
                     Wildcards(fromdict={"ds": "demo", "src": "landbird", "dst": "waterbird", "n": "0"}), 1,
                     ResourceList(fromdict=resources), Log([str(tmp_path / "logs" / "inpaint.log")]),
                     {"datasets": {}}, "inpaint", None)


@pytest.fixture
def job_of(tmp_path, in_process_step):
    """The Job run_step hands a step for ``snakemake``."""
    from ddb.scripting import run_step

    @run_step
    def step(job):
        return job

    return step


def test_run_step_hands_the_step_what_the_rule_declares(tmp_path, job_of):
    from ddb.scripting import job_fingerprint

    snakemake = snakemake_object(tmp_path)
    job = job_of(snakemake)
    run = tmp_path / "results" / "demo"
    assert job.rule == "inpaint" and job.seed == 7 and job.threads == 1
    assert job.wildcards.src == "landbird" and dict(job.wildcards) == {"ds": "demo", "src": "landbird",
                                                                      "dst": "waterbird", "n": "0"}
    assert job.input.manifest == run / "data" / "manifest.parquet"  # one file: a Path
    assert job.input.masks == [run / "masks" / "landbird" / "shard-0.tar"]  # a list stays a list
    assert job.input.low_loss == [] and job.input.get("token") is None
    assert list(job.input) == [run / "data" / "manifest.parquet", run / "masks" / "landbird" / "shard-0.tar"]
    assert job.output[0] == job.output.tar == run / "inpaint" / "shard-0.tar"
    assert job.output.index == run / "inpaint" / "shard-0.parquet"  # a declared name wins over a method
    assert job.params.cfg == {"inpainting": {"steps": 2}} and job.resources.runtime == 30
    assert job.log == tmp_path / "logs" / "inpaint.log" and job.config == {"datasets": {}}
    # the fingerprint is the one run_step always computed, with the thread count the job computes with
    assert len(job.fingerprint) == 64 and job.fingerprint == job_fingerprint(snakemake)


def test_the_job_record_is_read_only(tmp_path, job_of):
    job = job_of(snakemake_object(tmp_path))
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.seed = 8
    with pytest.raises(AttributeError, match="read-only"):
        job.params.seed = 8
    with pytest.raises(TypeError):
        job.params["seed"] = 8
    with pytest.raises(AttributeError, match="read-only"):
        job.input.manifest = Path("elsewhere")
    with pytest.raises(AttributeError, match=r"declares no 'resolution' \(it declares: cfg, seed\)"):
        job.params.resolution


def test_a_rule_without_runtime_or_seed_reads_as_none(tmp_path, job_of):
    from ddb.resume import runtime_note

    job = job_of(snakemake_object(tmp_path, runtime=None))
    assert getattr(job.resources, "runtime", None) is None and runtime_note(job) == ""
    assert runtime_note(job_of(snakemake_object(tmp_path))) == "this attempt's runtime request: 30 min"


def test_what_tests_give_instead_of_snakemakes_named_lists():
    from types import SimpleNamespace

    assert list(files_of(["a.parquet", "b.parquet"])) == [Path("a.parquet"), Path("b.parquet")]
    named = files_of({"evals": ["s0/eval.json", "s1/eval.json"], "table": "t.parquet"})
    assert named.evals == [Path("s0/eval.json"), Path("s1/eval.json")] and named.table == Path("t.parquet")
    assert list(named) == [Path("s0/eval.json"), Path("s1/eval.json"), Path("t.parquet")]
    assert files_of(SimpleNamespace(manifest="m.parquet")).manifest == Path("m.parquet")
    assert len(files_of(None)) == 0 and files_of(None).names() == [] and len(Named()) == 0


def test_two_jobs_in_one_process_do_not_share_a_fingerprint(tmp_path, job_of):
    """No module keeps the running job's fingerprint: a checkpoint made outside a job (None) keeps what the
    folder holds, whatever job ran before in the same process."""
    from ddb.storage.checkpoints import PartialShard, checkpointed

    job = job_of(snakemake_object(tmp_path))
    tar = tmp_path / "shard.tar"
    partial = PartialShard(tar, job.fingerprint)
    partial.put("a", None, {"sample_id": "a"})
    partial.commit()
    partial.close()
    assert (Path(f"{tar}.partial") / "fingerprint.txt").read_text() == job.fingerprint
    PartialShard(tar).close()  # no job: nothing discarded
    assert checkpointed(tar, job.fingerprint) == ["a"]
    PartialShard(tar, "another job").close()
    assert checkpointed(tar) == [] and checkpointed(tar, "another job") == []
