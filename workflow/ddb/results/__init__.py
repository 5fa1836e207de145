"""Reading a finished (or half-finished) run: what each step wrote, without torch, a config or the Snakefile.

:mod:`ddb.results.schema` holds the names the writers and the readers share (columns, the generated-sample id,
the evaluated models, the prune reasons); :mod:`ddb.results.reader` the :class:`~ddb.results.reader.Results` of
one run folder and the reading helpers ``ddb inspect`` and the report both use; :mod:`ddb.results.tables` the
rows of the tables both show. Nothing here formats text for the terminal (:mod:`ddb.presenters` does), so the
report's code version does not follow the CLI's wording.
"""
