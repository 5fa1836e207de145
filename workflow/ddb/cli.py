"""The ``ddb`` command: ``ddb inspect results/NAME [--step STEP | --sample ID | --verify] [--json]``,
``ddb config NAME``, ``ddb sheet ROOT [-o FILE]`` and ``ddb doctor``.

A bad input of ``inspect``, ``config`` or ``sheet`` (a :class:`ddb.errors.DDBError`) is printed as one line,
``ddb: <where>: <problem> (fix: ...)``, and the command exits :data:`BAD_INPUT`."""

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
    parser = argparse.ArgumentParser(
        prog="ddb", description="DDB (Diffusion Driven Balancing) workflow tools.",
        epilog="A bad input (a folder that is no run's, an unknown step, sample or dataset, a file that cannot be "
               "read) is one line on stderr, 'ddb: <file or field>: <problem> (fix: ...)', and exit code 1.")
    parser.add_argument("--version", action="version", version=f"ddb-workflow {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    inspect = commands.add_parser(
        "inspect", help="what each DDB step left under results/NAME",
        description="Print one line per DDB step (artifact, row/image counts, key figure); with --step that "
                    "step's table; with --sample one sample followed through every step. Steps whose artifacts "
                    "are missing are listed as 'not run yet'; exits 1 when an artifact it shows cannot be read.")
    inspect.add_argument("results", help="a dataset's results folder, e.g. results/demo")
    which = inspect.add_mutually_exclusive_group()
    which.add_argument("--step", metavar="STEP", help=step_help())
    which.add_argument("--sample", metavar="ID", help="follow a source id (train00001) or a generated id "
                                                      "(train00001_to_waterbird) through every step")
    which.add_argument("--verify", action="store_true",
                       help="read every artifact of the run back (models and every tuning candidate's included) "
                            "and list the damaged ones with the command that remakes them; exits 1 if any")
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
    config.add_argument("--resources", action="store_true",
                        help="print what each cluster job of the dataset asks for (GPUs, memory, runtime, "
                             "threads), each value with where it comes from, instead of the entry")
    config.add_argument("--json", action="store_true", help="print JSON instead of a text table")
    commands.add_parser(
        "doctor", help="can this node run DDB's GPU jobs? (run it on a GPU node before submitting)",
        description="Print torch's version and CUDA, the NVIDIA driver, the GPUs, whether a matmul on the GPU "
                    "works, the model caches and the offline switches, then a verdict: OK, or the problem and "
                    "its fix. Exits 1 on a problem. On SLURM: srun --partition=<gpu partition> --gpus=1 ddb doctor")
    sheet = commands.add_parser(
        "sheet", help="write a sample sheet (format: table) from ROOT/<label>/<spurious>/<image> folders",
        description="List every image under ROOT/<label>/<spurious>/ as a row (image relative to ROOT, label, "
                    "spurious) of a sample sheet for a `format: table` dataset entry with `root: ROOT`. Add a "
                    "`split` or `mask` column yourself where you have them.")
    sheet.add_argument("root", metavar="ROOT", help="the folder holding <label>/<spurious>/<image>")
    sheet.add_argument("-o", "--output", metavar="FILE",
                       help="the sheet to write, .csv, .tsv or .parquet (default: ROOT/samples.csv)")
    return parser


def sheet_command(args) -> int:
    from pathlib import Path

    from .datasets.folder_sheet import DEFAULT_NAME, sheet_from_folders, write_sheet

    output = Path(args.output) if args.output else Path(args.root) / DEFAULT_NAME
    table = sheet_from_folders(Path(args.root))
    write_sheet(table, output)
    groups = table.groupby(["label", "spurious"]).size()
    print(f"{output}: {len(table)} images, {table['label'].nunique()} classes, {len(groups)} groups")
    print(groups.rename("images").to_string())
    return 0


def one_line(error: Exception) -> str:
    """A DDBError as one line (``where: problem (fix: ...)``); anything else as its type and message."""
    from .errors import DDBError

    if isinstance(error, DDBError):
        return f"{error.where}: {error.problem}" + (f" (fix: {error.fix})" if error.fix else "")
    return f"{type(error).__name__}: {error}"


def inspect_command(args) -> int:
    from .presenters import overview, trace
    from .results.reader import open_results

    results = open_results(args.results)
    if args.verify:
        return verify_command(results, args.json)
    if args.step:
        step = overview.resolve_step(args.step)
        return _show_step(overview, results, step, args.json)
    if args.sample:
        found = trace.trace_sample(results, args.sample)
        if args.json:
            print(json.dumps({"sample_id": found.sample_id, "source_id": found.source_id,
                              "steps": [dict(zip(("step", "artifact", "what"), line)) for line in found.lines]},
                             indent=2, default=_plain))
        else:
            print(trace.format_trace(results, found))
        return 0
    summaries = overview.summarize(results)  # a damaged artifact is shown on its step's line
    if args.json:
        print(json.dumps(overview.overview_json(results, summaries), indent=2, default=_plain))
    else:
        print(overview.format_overview(results, summaries))
    return 1 if overview.unreadable(results, summaries) else 0


def _show_step(overview, results, step: str, as_json: bool) -> int:
    if as_json:
        table = overview.step_table(results, step)
        payload = {"step": step, "status": "missing" if table is None else "done"}
        if table is not None:
            payload.update(title=table[0], columns=table[1], rows=table[2])
        print(json.dumps(payload, indent=2, default=_plain))
    else:
        print(overview.format_step(results, step))
    return 0


def config_command(args) -> int:
    from .config_sources import format_entry, format_resources, resolve_entry, resolve_resources

    if args.resources:
        resources = resolve_resources(args.configfile or ["config.yaml"], args.name)
        if args.json:
            print(json.dumps([{"rule": r.rule, "key": r.key, "value": r.value, "source": r.source}
                              for r in resources], indent=2, default=_plain))
        else:
            print(format_resources(args.name, resources))
        return 0
    values = resolve_entry(args.configfile or ["config.yaml"], args.name)
    if args.json:
        print(json.dumps([{"key": v.key, "value": v.value, "source": v.source} for v in values], indent=2,
                         default=_plain))
    else:
        print(format_entry(args.name, values))
    return 0


def verify_command(results, as_json: bool) -> int:
    from .run_audit import format_verification, verify_run

    read, damaged = verify_run(results.paths)
    if as_json:
        print(json.dumps({"results": str(results.root), "read": read,
                          "damaged": [{"artifact": results.rel(d.path), "problem": d.problem, "fix": d.fix}
                                      for d in damaged]}, indent=2))
    else:
        print(format_verification(results.paths, read, damaged))
    return 1 if damaged else 0


def _plain(value):
    """numpy scalars and the like, for json.dumps."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


# The exit code of a bad input (a DDBError) of every command; argparse's own usage errors exit 2.
BAD_INPUT = 1

COMMANDS = {"inspect": inspect_command, "config": config_command, "sheet": sheet_command}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "doctor":
        from .doctor import doctor_command

        return doctor_command()
    from .errors import DDBError

    try:
        return COMMANDS[args.command](args)
    except DDBError as error:  # the input's fault: one line naming the file or field and the fix
        print(f"ddb: {one_line(error)}", file=sys.stderr)
        return BAD_INPUT
    except Exception as error:
        if args.command != "inspect":
            raise
        # inspect meets a table of another shape than its step writes: one line, never a traceback
        print(f"ddb: {one_line(error)}", file=sys.stderr)
        return BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
