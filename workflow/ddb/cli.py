"""The ``ddb`` command: ``ddb inspect results/NAME [--step STEP | --sample ID] [--json]``, ``ddb config NAME``
and ``ddb doctor``."""

from __future__ import annotations

import argparse
import json
import sys

from . import __version__
from .steps import inspected


def step_help() -> str:
    """The ``--step`` help: every step ``ddb inspect`` shows (ddb.steps), then the first alias of each."""
    steps = inspected()
    return (f"one step's table: {', '.join(step.name for step in steps)} "
            f"(aliases: {', '.join(step.aliases[0] for step in steps if step.aliases)})")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ddb", description="DDB (Diffusion Driven Balancing) workflow tools.")
    parser.add_argument("--version", action="version", version=f"ddb-workflow {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    inspect = commands.add_parser(
        "inspect", help="what each DDB step left under results/NAME",
        description="Print one line per DDB step (artifact, row/image counts, key figure); with --step that "
                    "step's table; with --sample one sample followed through every step. Steps whose artifacts "
                    "are missing are listed as 'not run yet'.")
    inspect.add_argument("results", help="a dataset's results folder, e.g. results/demo")
    which = inspect.add_mutually_exclusive_group()
    which.add_argument("--step", metavar="STEP", help=step_help())
    which.add_argument("--sample", metavar="ID", help="follow a source id (train00001) or a generated id "
                                                      "(train00001_to_waterbird) through every step")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of a text table")
    config = commands.add_parser(
        "config", help="a dataset entry as the workflow resolves it, each value with where it comes from",
        description="Print every value of datasets.NAME as the jobs receive it, and where it comes from: a "
                    "config file, the format's defaults (the paper's setting for its datasets), the schema's "
                    "defaults, or derived when the config is loaded (class names, one value per class).")
    config.add_argument("name", help="a dataset of the config, e.g. demo or waterbirds")
    config.add_argument("--configfile", action="append", metavar="FILE",
                        help="config file(s), later ones overriding earlier ones as with snakemake "
                             "(default: config.yaml)")
    config.add_argument("--json", action="store_true", help="print JSON instead of a text table")
    commands.add_parser(
        "doctor", help="can this node run DDB's GPU jobs? (run it on a GPU node before submitting)",
        description="Print torch's version and CUDA, the NVIDIA driver, the GPUs, whether a matmul on the GPU "
                    "works, the model caches and the offline switches, then a verdict: OK, or the problem and "
                    "its fix. Exits 1 on a problem. On SLURM: srun --partition=<gpu partition> --gpus=1 ddb doctor")
    return parser


def _fail(message: str) -> int:
    print(f"ddb inspect: {message}", file=sys.stderr)
    return 2


def inspect_command(args) -> int:
    from . import inspect as ins

    try:
        results = ins.open_results(args.results)
    except ins.NotAResultsFolder as error:
        return _fail(str(error))
    if args.step:
        try:
            step = ins.resolve_step(args.step)
        except ValueError as error:
            return _fail(str(error))
        if args.json:
            table = ins.step_table(results, step)
            payload = {"step": step, "status": "missing" if table is None else "done"}
            if table is not None:
                payload.update(title=table[0], columns=table[1], rows=table[2])
            print(json.dumps(payload, indent=2, default=_plain))
        else:
            print(ins.format_step(results, step))
        return 0
    if args.sample:
        try:
            trace = ins.trace_sample(results, args.sample)
        except ins.SampleNotFound as error:
            return _fail(str(error))
        if args.json:
            print(json.dumps({"sample_id": trace.sample_id, "source_id": trace.source_id,
                              "steps": [dict(zip(("step", "artifact", "what"), line)) for line in trace.lines]},
                             indent=2, default=_plain))
        else:
            print(ins.format_trace(results, trace))
        return 0
    summaries = ins.summarize(results)
    if args.json:
        print(json.dumps(ins.overview_json(results, summaries), indent=2, default=_plain))
    else:
        print(ins.format_overview(results, summaries))
    return 0


def config_command(args) -> int:
    from .config_sources import format_entry, resolve_entry
    from .errors import DDBError

    try:
        values = resolve_entry(args.configfile or ["config.yaml"], args.name)
    except DDBError as error:
        print(f"ddb config: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([{"key": v.key, "value": v.value, "source": v.source} for v in values], indent=2,
                         default=_plain))
    else:
        print(format_entry(args.name, values))
    return 0


def _plain(value):
    """numpy scalars and the like, for json.dumps."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "inspect":
        return inspect_command(args)
    if args.command == "config":
        return config_command(args)
    if args.command == "doctor":
        from .doctor import doctor_command

        return doctor_command()
    return 2


if __name__ == "__main__":
    sys.exit(main())
