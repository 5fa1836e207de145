import time
import re
import os
import sys
from pathlib import Path

# The package lives in workflow/ddb; rule scripts run in their own interpreter, which inherits the
# environment ddb.job_environment.prepare sets (PYTHONPATH, OpenMP waiting, cluster job or not).
PACKAGE_ROOT = Path(workflow.basedir) / "workflow"
sys.path.insert(0, str(PACKAGE_ROOT))

from ddb.job_environment import prepare as prepare_job_environment  # noqa: E402

prepare_job_environment(PACKAGE_ROOT, remote=workflow.remote_exec)

from ddb.config import ConfigSources, validate_config  # noqa: E402
from ddb.errors import DDBError  # noqa: E402
from ddb.paths import ARTIFACTS, MODEL_RECORD, artifact_path, results_artifact_path  # noqa: E402
from ddb.resources import ResourcePolicy  # noqa: E402
from ddb.runs import Runs, pairs_of as entry_pairs, shards_of as entry_shards  # noqa: E402
from ddb.runs import source_classes as entry_sources  # noqa: E402
from ddb.targets import snakemake_targets  # noqa: E402

# Our own validator: snakemake.utils.validate's messages do not name the key path of the error. Each message
# names the file the bad value came from: the Snakefile's config.yaml, a --configfile or the --config overrides.
CONFIG_SOURCES = ConfigSources.from_snakemake(workflow.configfiles, workflow.overwrite_configfiles,
                                              workflow.config_settings.config,
                                              workflow.config_settings.replace_workflow_config)
try:
    validate_config(config, CONFIG_SOURCES)
except DDBError as error:
    raise WorkflowError(str(error)) from None

R = config["results"].rstrip("/")
# Each job's log lies under the results folder (<results>/logs/<rule>/<wildcards>.log), so two configs with
# other results folders never write over each other's logs; `logs` is therefore no dataset name.
LOGS = f"{R}/logs"
# Each job's Snakemake benchmark (wall time, peak resident memory), beside its log
BENCHMARKS = f"{R}/benchmarks"
# The software of every rule, for `snakemake --sdm conda` (relative to rules/, which holds the rules).
CONDA_ENV = "../envs/ddb.yaml"
def artifact(name):
    """The path pattern of artifact ``name`` for a rule's input or output (ddb.paths.ARTIFACTS, the one place
    that names artifact paths): the run's folder is the `ds` wildcard, the file's own wildcards stay."""
    return f"{R}/{{ds}}/{ARTIFACTS[name]}"


def run_artifact(run, name, **wildcards):
    """The path of artifact ``name`` of ``run`` (a dataset, or <dataset>/seed-<s>), as a string."""
    return str(artifact_path(R, run, name, **wildcards))


def results_artifact(name):
    """The path of ``name`` of ddb.paths.RESULTS_ARTIFACTS: a file of the results folder, no run's."""
    return str(results_artifact_path(R, name))


def artifact_folder(name):
    """The folder pattern that holds artifact ``name`` (a rule's directory() output)."""
    return f"{R}/{{ds}}/{Path(ARTIFACTS[name]).parent.as_posix()}"


# A run is one dataset at one seed (ddb.runs): the `ds` wildcard names a run, so every rule runs per seed
# unchanged. The config's seed keeps the dataset's own folder; each other seed of `seeds` gets
# <dataset>/seed-<s>, with the same entry.
RUNS = Runs(config)
RUN_SEEDS = RUNS.seed_of  # run -> seed
RUN_DATASETS = RUNS.dataset_of  # run -> dataset name
DATASETS = RUNS.entries  # run -> dataset entry
# prepare_dataset runs for the datasets themselves; a run of another seed copies their manifest
BASE_RUN_PATTERN = RUNS.base_pattern
SEED_RUN_PATTERN = RUNS.seed_pattern
runs_of = RUNS.runs_of


def run_seed(wildcards):
    """The seed of the run the job belongs to (a rule's `seed` param)."""
    return RUN_SEEDS[wildcards.ds]


wildcard_constraints:
    **RUNS.wildcard_constraints(),


# ---- code versions: a `script:` rule reruns when its script changes, not when the modules it imports
# do, so each rule gets the hash of its script's import closure in the package as a param (ddb.code_versions).
def code_version(step):
    from ddb.code_versions import code_version as import_closure_version

    return import_closure_version(Path(workflow.basedir) / "scripts" / f"{step}.py")


# ---- resources: what each rule asks a cluster for (ddb.resources; a local run ignores the GPU request).
# The partitions come from the environment Snakemake runs in (docs/cluster.md).
RESOURCES = ResourcePolicy(config, DATASETS, os.environ)


def rule_resources(rule):
    return RESOURCES.rule_resources(rule)


def rule_threads(rule):
    return RESOURCES.rule_threads(rule)


def training_retries(rule):
    return RESOURCES.retries(rule)


def check_cluster_requests():
    """With the slurm executor (not a dry run: onstart runs only before real jobs), stop before anything is
    submitted if a planned job asks for more CPUs, memory or GPUs than any node of its partition has:
    SLURM would keep it PENDING for ever without a word (ddb.cluster)."""
    plugin = workflow.executor_plugin
    if plugin is None or plugin.name != "slurm" or workflow.dryrun or not workflow.is_main_process:
        return
    from ddb.cluster import check_planned_jobs

    try:
        checked = check_planned_jobs(workflow.dag.needrun_jobs(), warn=logger.warning)
    except DDBError as error:
        raise WorkflowError(str(error)) from None
    if checked:
        logger.info(f"ddb: the {checked} SLURM jobs planned fit the nodes of their partitions (sinfo)")


def take_results_lock():
    """One run at a time per results folder, from any checkout (ddb.storage.locks.take_run_lock): a second
    run stops here naming the first. Called from onstart, which Snakemake runs only before real jobs of
    the main process: never in a dry run, --lint, --list or `ddb inspect`, and never inside a job (a SLURM
    or local job's `snakemake` runs with --no-hooks), so the holder's own jobs pass."""
    if not workflow.is_main_process:
        return
    from ddb.storage.locks import take_run_lock

    try:
        take_run_lock(R)
    except DDBError as error:
        raise WorkflowError(str(error)) from None


def release_results_lock():
    """onsuccess / onerror: hand the results folder to the next run (ddb.storage.locks.release_run_lock)."""
    from ddb.storage.locks import release_run_lock

    release_run_lock(R)


def check_slurm_profile_variables():
    """With the slurm profile: stop at once, in one message, where its account or partition variable is not
    set (the profile leaves a placeholder in default-resources rather than fail after Snakemake's usage)."""
    from ddb.cluster import check_profile_variables

    defaults = workflow.resource_settings.default_resources
    try:
        check_profile_variables({name: getattr(defaults.get(name), "raw", None) for name in defaults or {}})
    except DDBError as error:
        raise WorkflowError(str(error)) from None


check_slurm_profile_variables()


def command_line_targets():
    """The targets of the `snakemake` command (ddb.targets.snakemake_targets): Snakemake hands them to the
    workflow only after parsing it, so they are read from its command line; None (nothing to check) in a job
    (remote mode) or where the workflow is run through the API."""
    return None if workflow.remote_exec else snakemake_targets()


def check_command_line_targets():
    """Name what exists where a target of the `snakemake` command is a file no rule makes (a mistyped dataset
    or artifact), instead of Snakemake's bare MissingRuleException (ddb.targets)."""
    from ddb.targets import check_command_line_targets as check

    targets = command_line_targets()
    if targets is None:
        return

    def producible(target):
        return any(rule.is_producer(target) for rule in workflow.rules)

    try:
        check(targets, is_rule=workflow.is_rule, producible=producible, results=R, datasets=DATASETS)
    except DDBError as error:
        raise WorkflowError(str(error)) from None


# ---- job grouping on a cluster (ignored by a local run): with resources.group_generation, the mask ->
# inpaint -> ig_score chain of one shard is one SLURM job (ddb.resources.ResourcePolicy.generation_group).
GENERATION_GROUP = RESOURCES.generation_group


# ---- per-dataset config: each rule gets only the sections it uses as params, so editing one
# section reruns the steps that read it and their descendants, nothing upstream.
def dataset_section(*keys, only_if_set=()):
    """The entry's ``keys``, and those of ``only_if_set`` that it has (keys of one format, e.g. a sample
    sheet's `table`: absent from the other formats' entries, and so from their params)."""

    def get(wildcards):
        entry = DATASETS[wildcards.ds]
        return {key: entry[key] for key in (*keys, *(key for key in only_if_set if key in entry))}

    return get


# ---- the data itself: prepare_dataset's inputs are the files its manifest is built from, so editing
# metadata.csv, re-extracting images or replacing the segmentations folder reruns it and what follows.
def dataset_sources(wildcards):
    """The dataset's index files and image/mask folders (ddb.datasets.source_paths; none for the demo)."""
    from ddb.datasets import source_paths

    return source_paths(DATASETS[wildcards.ds])


def dataset_source_stamps(wildcards):
    """Size and time of each source, a param: a file put back with an *older* time (re-extracted from an
    archive, which restores the archived times) reruns prepare_dataset too, not only a newer one. Found
    from the wildcards, not the `input` argument: Snakemake ignores params derived from the input."""
    from ddb.datasets import source_stamps

    return source_stamps(dataset_sources(wildcards))


def mask_folder(wildcards):
    """masking.mask_dir, the folder of the `files` masker, as an input of the mask rule (replacing it reruns
    mask and what follows); nothing where the masks come from the manifest's mask_path."""
    masking = DATASETS[wildcards.ds]["masking"]
    folder = masking.get("mask_dir")
    return [folder] if masking["masker"] == "files" and folder and Path(folder).is_dir() else []


def classes_of(ds):
    return DATASETS[ds]["classes"]


def class_index(ds, name):
    return classes_of(ds).index(name)


def shards_of(ds, src):
    """Shard numbers of source class ``src`` of run ``ds``, counted from the config (ddb.runs.shards_of)."""
    return entry_shards(DATASETS[ds], src)


def pairs_of(ds):
    return entry_pairs(DATASETS[ds])


def ti_enabled(ds):
    return DATASETS[ds]["textual_inversion"]["enabled"]


# ---- the targets (ddb.targets): the `all` rule's, the table across datasets' and the report's
def all_targets():
    from ddb.targets import all_targets as targets

    return targets(R, config["targets"], config["datasets"], seeds=bool(config["seeds"]))


def paper_table_reports():
    from ddb.targets import paper_table_reports as reports

    return reports(R, config["targets"], seeds=bool(config["seeds"]))


def step_artifacts():
    """Every artifact of the target datasets, for the `all` rule: each `in_all` rule's outputs (which only
    `rules.<name>` knows) at the wildcard values ddb.targets.step_wildcard_values gives."""
    from ddb.targets import step_wildcard_values

    try:
        jobs = step_wildcard_values(config["targets"], DATASETS)
    except DDBError as error:
        raise WorkflowError(str(error)) from None
    files = []
    for ds, name, combinations in jobs:
        outputs = getattr(rules, name).output
        for values in combinations:
            files += expand(outputs, ds=ds, **values)
    return list(dict.fromkeys(files))


# ---- the end of a successful run (onsuccess): the tables of the results this invocation wrote
STARTED = time.time()


def print_eval_summaries():
    from ddb.closing_tables import print_closing_tables

    print_closing_tables(R, config["targets"], config["datasets"], bool(config["seeds"]), STARTED)


# ---- the data, checked while Snakemake reads the workflow (ddb.datasets.roots): results of one results
# folder never mix two roots of a dataset, and a dataset the requested targets need has its data.
def check_dataset_roots():
    from ddb.datasets.roots import check_recorded_roots

    try:
        check_recorded_roots(R, DATASETS, allow_change=config["allow_root_change"])
    except DDBError as error:
        raise WorkflowError(str(error)) from None


check_dataset_roots()


def check_requested_data():
    """Stop before anything is planned (a dry run and a cluster run alike) if a dataset the requested targets
    need lacks its data: a missing root, or one without its layout's key files."""
    from ddb.datasets.roots import check_requested_roots

    targets = command_line_targets()
    if targets is None:
        return
    try:
        check_requested_roots(targets, results=R, datasets=config["datasets"], default=config["targets"])
    except DDBError as error:
        raise WorkflowError(str(error)) from None


check_requested_data()


# ---- input functions of the rules (beside the other helpers: the workflow catalog keeps rule files free of
# functions); they read `rules.<name>` only when called, after every rule file is included.


# ---- hub models (rules/models.smk): one fetch_model job per hub model the runs load, run where Snakemake
# runs; each job that loads the model takes its record as an input (ddb.models.fetching).
def planned_models():
    from ddb.models.fetching import planned_models as plan

    return plan(DATASETS)


MODELS_TO_FETCH = planned_models()


def fetch_name_pattern():
    """fetch_model's `model` wildcard: exactly the planned models' record names."""
    from ddb.models.fetching import name_pattern

    return name_pattern(MODELS_TO_FETCH)


def model_records(step):
    """The records of the hub models that the jobs of ``step`` load for their dataset; none for tiny,
    `random`, `ddb` and local models."""
    def get(wildcards):
        from ddb.models.fetching import step_records

        return [f"{R}/{MODEL_RECORD.format(model=name)}" for name in step_records(DATASETS[wildcards.ds], step)]

    return get


def imported_erm(wildcards):
    path = DATASETS[wildcards.ds]["erm"]["checkpoint"]
    return [path] if path else []

def generation_low_loss(wildcards):
    """D_i, the low-loss table of the source class, where the sources are D_i (Algorithm 1)."""
    if DATASETS[wildcards.ds]["generation"]["sources"] != "low_loss":
        return []
    return expand(rules.select_low_loss.output[0], ds=wildcards.ds, cls=wildcards.src)

def learned_token(wildcards):
    if not ti_enabled(wildcards.ds):
        return []
    return expand(rules.textual_inversion.output.embeds, ds=wildcards.ds, cls=wildcards.dst)

def generated_inputs(kind):
    def get(wildcards):
        paths = []
        for src, dst in pairs_of(wildcards.ds):
            if kind == "prune":
                paths.append(expand(rules.prune.output[0], ds=wildcards.ds, src=src, dst=dst)[0])
            else:
                paths += expand(getattr(rules.inpaint.output, kind), ds=wildcards.ds, src=src, dst=dst,
                                n=shards_of(wildcards.ds, src))
        return paths

    return get

def source_classes(ds):
    """The classes that are a source of some pair, in class-index order (ddb.runs.source_classes)."""
    return entry_sources(DATASETS[ds])

def visualize_masks(wildcards):
    return [path for src in source_classes(wildcards.ds)
            for path in expand(rules.mask.output.tar, ds=wildcards.ds, src=src, n=shards_of(wildcards.ds, src))]

def visualize_scores(wildcards):
    return [path for src, dst in pairs_of(wildcards.ds)
            for path in expand(rules.ig_score.output[0], ds=wildcards.ds, src=src, dst=dst,
                               n=shards_of(wildcards.ds, src))]

def visualize_ti_losses(wildcards):
    if not ti_enabled(wildcards.ds):
        return []
    return expand(rules.textual_inversion.output.loss, ds=wildcards.ds, cls=classes_of(wildcards.ds))


# ---- tuning P and γ on validation (a dataset entry's `tune` section; rules/tune.smk, ddb.tuning). Without
# one, nothing here changes the DAG; with one, the selected candidate's model is DDB's.
def tuned(ds):
    from ddb.tuning import is_tuned

    return is_tuned(DATASETS[ds])


def tune_candidates(ds):
    """The candidates' names (made of their values: P0.2_0.2-g1_1), in the order given."""
    from ddb.tuning import candidate_names

    return candidate_names(DATASETS[ds])


def tune_candidate_values(ds):
    """[{name, order, thresholds, gammas}] of every candidate (tune_select's params)."""
    from ddb.tuning import candidates

    return candidates(DATASETS[ds])


def tune_name_pattern():
    """The `cand` wildcard: exactly the configured candidates (any name of their form if none tunes)."""
    from ddb.tuning import NAME_PATTERN

    names = sorted({name for ds in DATASETS for name in tune_candidates(ds)})
    return "|".join(re.escape(name) for name in names) if names else NAME_PATTERN


def tune_section(*keys):
    """A candidate's params.cfg: dataset_section(*keys) with its thresholds (prune) and gammas (retrain)."""
    def get(wildcards):
        from ddb.tuning import candidate_sections

        try:
            return candidate_sections(DATASETS[wildcards.ds], wildcards.cand, keys)
        except DDBError as error:
            raise WorkflowError(f"datasets.{wildcards.ds}.{error}") from None

    return get


def candidate_prune_tables(ds, cand):
    return [expand(rules.tune_prune.output[0], ds=ds, cand=cand, src=src, dst=dst)[0] for src, dst in pairs_of(ds)]


def tune_prune_tables(wildcards):
    """One candidate's prune tables, one per class pair (the input of its tune_retrain)."""
    return candidate_prune_tables(wildcards.ds, wildcards.cand)


def tune_outputs(kind):
    """Every candidate's prune tables (`prune`), retraining histories (`history`) or models (`model`)."""
    def get(wildcards):
        paths = []
        for cand in tune_candidates(wildcards.ds):
            if kind == "prune":
                paths += candidate_prune_tables(wildcards.ds, cand)
            else:
                paths += expand(getattr(rules.tune_retrain.output, kind), ds=wildcards.ds, cand=cand)
        return paths

    return get


def tune_selection(wildcards):
    """selected.json of a tuned dataset (an input of evaluate), nothing otherwise."""
    return expand(rules.tune_select.output.selected, ds=wildcards.ds) if tuned(wildcards.ds) else []


def tune_candidates_table(wildcards):
    """candidates.parquet of a tuned dataset (an input of evaluate), nothing otherwise."""
    return expand(rules.tune_select.output.table, ds=wildcards.ds) if tuned(wildcards.ds) else []


def dfr_output(name):
    """The DFR baseline's output ``name`` (rules/retrain.smk) where the dataset's `dfr` section is enabled."""
    def get(wildcards):
        if not DATASETS[wildcards.ds]["dfr"]["enabled"]:
            return []
        return expand(getattr(rules.dfr.output, name), ds=wildcards.ds)[0]

    return get


def ddb_models(wildcards):
    """evaluate's DDB model: retrain's, or with tuning every candidate's (evaluate reads only the selected one)."""
    if tuned(wildcards.ds):
        return tune_outputs("model")(wildcards)
    return expand(rules.retrain.output.model, ds=wildcards.ds)


def ddb_prune_tables(wildcards):
    """The prune tables behind DDB's model: the plain ones, or with tuning every candidate's."""
    return tune_outputs("prune")(wildcards) if tuned(wildcards.ds) else generated_inputs("prune")(wildcards)


def ddb_retrain_histories(wildcards):
    if tuned(wildcards.ds):
        return tune_outputs("history")(wildcards)
    return expand(rules.retrain.output.history, ds=wildcards.ds)


def tune_reports():
    """report/tune.html of each tuned target (visualize_all; ddb.targets.tune_reports)."""
    from ddb.targets import tune_reports as reports

    return reports(R, config["targets"], config["datasets"])
