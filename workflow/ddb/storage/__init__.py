"""Where artifacts are stored, split by job.

- :mod:`.atomic`: every write goes to a temporary name and is renamed into place, so a killed job never
  leaves a file that Snakemake or a reader takes as complete; a full disk is one error naming the file.
- :mod:`.images`: PNG encoding and decoding.
- :mod:`.shards`: image shards, plain tars of ``{sample_id}.png`` (the WebDataset convention) with a
  Parquet index beside them, so ``tar -tf``, PIL, pandas and webdataset can all open them.
- :mod:`.checkpoints`: a shard in progress, checkpointed per batch, resumed after a killed job.
- :mod:`.locks`: one job per shard.
- :mod:`.reading`: reading a table back, with one error naming the file and the rule that remakes it.
- :mod:`.remake`: which rule writes an artifact, for the fix of an error.
"""
