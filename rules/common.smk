import time
import re
import math
import os
import sys
from pathlib import Path

# The package lives in workflow/ddb; rule scripts run in their own interpreter, which inherits the
# environment ddb.job_environment.prepare sets (PYTHONPATH, OpenMP waiting, cluster job or not).
PACKAGE_ROOT = Path(workflow.basedir) / "workflow"
sys.path.insert(0, str(PACKAGE_ROOT))

from ddb.job_environment import prepare as prepare_job_environment  # noqa: E402

prepare_job_environment(PACKAGE_ROOT, remote=workflow.remote_exec)

from ddb.config import class_pairs, validate_config  # noqa: E402
from ddb.sharding import shard_count  # noqa: E402
from ddb.errors import DDBError  # noqa: E402
from ddb.paths import ARTIFACTS, MODEL_RECORD, artifact_path, results_artifact_path, run_name  # noqa: E402
from ddb.steps import STEPS, resource_class  # noqa: E402

# Our own validator: snakemake.utils.validate's messages do not name the key path of the error.
try:
    validate_config(config, "config")
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


# A run is one dataset at one seed (ddb.paths.run_name): the `ds` wildcard names a run, so every rule runs
# per seed unchanged. The config's seed keeps the dataset's own folder; each other seed of `seeds` gets
# <dataset>/seed-<s>, with the same entry.
SEEDS = config["seeds"] or [config["seed"]]
RUN_SEEDS = {run_name(ds, seed, config["seed"]): seed for ds in config["datasets"] for seed in SEEDS}
RUN_DATASETS = {run_name(ds, seed, config["seed"]): ds for ds in config["datasets"] for seed in SEEDS}
DATASETS = {run: config["datasets"][ds] for run, ds in RUN_DATASETS.items()}
ALL_CLASSES = sorted({c for d in DATASETS.values() for c in d["classes"]})


# prepare_dataset runs for the datasets themselves; a run of another seed copies their manifest
BASE_RUN_PATTERN = "|".join(re.escape(ds) for ds in config["datasets"])
SEED_RUN_PATTERN = "|".join(re.escape(run) for run in RUN_DATASETS if run not in config["datasets"]) or "(?!)"


def runs_of(ds):
    """The runs of dataset ``ds``, one per seed, in the order of `seeds`."""
    return [run for run, dataset in RUN_DATASETS.items() if dataset == ds]


def run_seed(wildcards):
    """The seed of the run the job belongs to (a rule's `seed` param)."""
    return RUN_SEEDS[wildcards.ds]


wildcard_constraints:
    ds="|".join(re.escape(run) for run in sorted(DATASETS, key=len, reverse=True)),
    cls="|".join(ALL_CLASSES),
    src="|".join(ALL_CLASSES),
    dst="|".join(ALL_CLASSES),
    n=r"\d+",


# ---- code versions: a `script:` rule reruns when its script changes, not when the modules it imports
# do, so each rule gets the hash of its script's import closure in the package as a param (ddb.code_versions).
def code_version(step):
    from ddb.code_versions import code_version as import_closure_version

    return import_closure_version(Path(workflow.basedir) / "scripts" / f"{step}.py")


# ---- resources: heavy rules ask for a GPU on a cluster; a local run ignores the request.
# The names are the ones snakemake-executor-plugin-slurm reads: `gpu` (count) and `gpu_model` become
# `sbatch --gpus=<gpu_model>:<gpu>`; mem_mb becomes --mem, runtime (minutes) --time, threads
# --cpus-per-task. Keyed by resource class: each rule's is declared with its step (ddb.steps).
DEFAULT_RESOURCES = {
    # epochs over a training split: train_erm, retrain (and each tuning candidate's tune_retrain)
    "training": {"gpu": 1, "mem_mb": 32000, "runtime": 240, "threads": 8},
    # Stable Diffusion: textual_inversion, inpaint
    "diffusion": {"gpu": 1, "mem_mb": 32000, "runtime": 120, "threads": 4},
    # one shard's images through the masker (GroundingDINO + SAM) or integrated gradients: mask, ig_score
    "shard_models": {"gpu": 1, "mem_mb": 24000, "runtime": 60, "threads": 4},
    # f over every image of a split, which takes hours on one CPU core and minutes on a GPU: select_low_loss
    # (80 000 training images of a class for CelebA), dfr (the training and validation splits' features,
    # CelebA: 68 000 images, then seconds of liblinear)
    "classifier_pass": {"gpu": 1, "mem_mb": 16000, "runtime": 60, "threads": 4},
    # the test split through ERM, DFR and DDB: evaluate
    "evaluation": {"gpu": 1, "mem_mb": 16000, "runtime": 30, "threads": 4},
    "light": {"mem_mb": 4000, "runtime": 30, "threads": 1},
}


# The GPU rules' partition, where GPUs have their own (docs/cluster.md). Chosen here rather than in the
# profile's set-resources, which `--set-resources` on the command line would replace as a whole.
GPU_PARTITION = os.environ.get("DDB_SLURM_GPU_PARTITION", "").strip()
COMMON_PARTITION = (os.environ.get("DDB_SLURM_PARTITION", "").strip()
                    or os.environ.get("SBATCH_PARTITION", "").strip() or None)


def estimated_runtime(rule, ds):
    """Minutes a job of ``rule`` for dataset ``ds`` is estimated to take from its work (ddb.sizing); None
    where config resources.rules sets the rule's runtime, or nothing is estimated (the demo, light rules)."""
    if "runtime" in config["resources"]["rules"].get(rule, {}):
        return None
    from ddb.sizing import rule_estimate

    estimate = rule_estimate(rule, DATASETS[ds], config["resources"])
    return None if estimate is None else estimate["minutes"]


def configured_resources(rule, ds=None, capped=True):
    """gpu, mem_mb, runtime, threads for ``rule``: the built-in defaults, overridden by config
    resources.rules, then for dataset ``ds`` by its own `resources`: `scale` multiplies mem_mb and runtime,
    the runtime estimated from the job's work replaces the scaled runtime (unless resources.rules sets one),
    `max` caps every value (not with ``capped`` false), `rules` sets the rule's values outright."""
    merged = dict(DEFAULT_RESOURCES[resource_class(rule) or "light"])
    merged.update(config["resources"]["rules"].get(rule, {}))
    if ds is not None:
        own = DATASETS[ds]["resources"]
        for key in ("mem_mb", "runtime"):
            merged[key] = max(1, math.ceil(round(merged[key] * own["scale"], 6)))
        merged["runtime"] = estimated_runtime(rule, ds) or merged["runtime"]
        for key, cap in own["max"].items() if capped else ():
            if key in merged:
                merged[key] = min(merged[key], cap)
        merged.update(own["rules"].get(rule, {}))
    return merged


def job_resources(rule, ds):
    """The Snakemake resources of a job of ``rule`` for dataset ``ds`` (gpu_model added where it asks for
    a GPU)."""
    merged = configured_resources(rule, ds)
    # torch's intra-op thread count changes float results on a CPU, and Snakemake lowers `threads` to
    # --cores: scripts compute with this configured count instead (ddb.scripting.compute_threads).
    merged["cpu_threads"] = merged.pop("threads")
    if merged.get("gpu"):
        # no gpu_model: the plugin asks for any GPU (--gpus=1)
        if config["resources"]["gpu_model"]:
            merged["gpu_model"] = config["resources"]["gpu_model"]
        if GPU_PARTITION:
            merged["slurm_partition"] = GPU_PARTITION
        # read by the job itself (ddb.scripting.check_cuda): may it run on a CPU if it finds no CUDA?
        fallback = DATASETS[ds]["resources"]["cpu_fallback"]
        merged["cpu_fallback"] = int(config["resources"]["cpu_fallback"] if fallback is None else fallback)
    return merged


def per_dataset(values):
    """``values`` (dataset -> value) as a rule's threads or resource: the value itself where every dataset
    agrees, else a function of the job's wildcards (Snakemake declares resources per rule, not per job)."""
    if len({repr(v) for v in values.values()}) == 1:
        return next(iter(values.values()))
    return lambda wildcards: values[wildcards.ds]


def rule_resources(rule):
    """The Snakemake resources of ``rule``, each job's from its dataset (a missing one is dropped, except
    a GPU-less job's partition where the GPU rules have their own)."""
    jobs = {ds: job_resources(rule, ds) for ds in DATASETS}
    names = dict.fromkeys(name for resources in jobs.values() for name in resources)
    fallback = {"slurm_partition": COMMON_PARTITION}
    merged = {name: per_dataset({ds: resources.get(name, fallback.get(name)) for ds, resources in jobs.items()})
              for name in names}
    if "runtime" in merged:
        merged["runtime"] = runtime_by_attempt({ds: resources["runtime"] for ds, resources in jobs.items()})
    return merged


def runtime_by_attempt(runtimes):
    """A rule's runtime (minutes; dataset -> first request) as a function of Snakemake's `attempt`: a failed
    job that is retried (the slurm profile's `retries: 1`; a SLURM TIMEOUT most often) asks for `attempt`
    times its first runtime, and the training steps go on from their checkpoint (ddb.resume). Never above
    the dataset's `resources.max.runtime`, unless the first request already is."""
    caps = {ds: DATASETS[ds]["resources"]["max"].get("runtime") for ds in runtimes}
    first = next(iter(runtimes))

    def runtime(wildcards, attempt):
        ds = getattr(wildcards, "ds", None)
        ds = ds if ds in runtimes else first
        grown = runtimes[ds] * max(1, int(attempt))
        return grown if caps[ds] is None else max(runtimes[ds], min(grown, caps[ds]))

    return runtime


def training_retries(rule):
    """A training rule's `retries`: where a dataset's max.runtime cuts its estimated runtime short, enough
    attempts to finish, each going on from the last checkpoint (ddb.sizing.training_retries); None (the
    profile's `retries`) elsewhere. Snakemake's settings are unknown while it reads the rules, so these
    retries hold for a local run too, where a job that fails is then run again from its checkpoint."""
    from ddb.sizing import training_retries as retries_for

    return retries_for([(configured_resources(rule, ds, capped=False)["runtime"],
                         configured_resources(rule, ds)["runtime"])
                        for ds in DATASETS if estimated_runtime(rule, ds) is not None])


def rule_threads(rule):
    return per_dataset({ds: configured_resources(rule, ds)["threads"] for ds in DATASETS})


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


def check_command_line_targets():
    """Name what exists where a target of the `snakemake` command is a file no rule makes (a mistyped dataset
    or artifact), instead of Snakemake's bare MissingRuleException. Snakemake hands the targets to the
    workflow only after parsing it, so they are read from the command line (ddb.targets.snakemake_targets);
    nothing is checked in a job (remote mode) or where the workflow is run through the API."""
    from ddb.targets import check_targets, snakemake_targets

    targets = None if workflow.remote_exec else snakemake_targets()
    if targets is None:
        return
    files = [t for t in targets if not workflow.is_rule(t) and not os.path.exists(t)]

    def producible(target):
        return any(rule.is_producer(target) for rule in workflow.rules)

    classes = {run: entry["classes"] for run, entry in DATASETS.items()}
    try:
        check_targets(files, producible, R, DATASETS, classes)
    except DDBError as error:
        raise WorkflowError(str(error)) from None


# ---- job grouping on a cluster (ignored by a local run). With resources.group_generation, the
# mask -> inpaint -> ig_score chain of one shard becomes one SLURM job ("generation" group): one queue
# wait instead of three, and the shard's files are read back on the node that wrote them. The chain
# runs in series, so the job asks for one GPU, the largest mem_mb and the sum of the runtimes.
GENERATION_GROUP = "generation" if config["resources"]["group_generation"] else None



# ---- per-dataset config: each rule gets only the sections it uses as params, so editing one
# section reruns the steps that read it and their descendants, nothing upstream.
def dataset_section(*keys):
    def get(wildcards):
        entry = DATASETS[wildcards.ds]
        return {key: entry[key] for key in keys}

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
    """Shard numbers of source class ``src``: counted from the config (ddb.sharding), so the whole DAG is
    planned before any job runs; its inpaint and ig_score shards of every target class follow its mask shards."""
    return range(shard_count(DATASETS[ds], src))


def pairs_of(ds):
    names = classes_of(ds)
    return [(names[i], names[j]) for i, j in class_pairs(names)]


def ti_enabled(ds):
    return DATASETS[ds]["textual_inversion"]["enabled"]


def all_targets():
    """eval.json of each target dataset, and with `seeds` its summary over the seeds (which needs every
    seed's eval.json)."""
    targets = [run_artifact(ds, "eval_json") for ds in config["targets"]]
    if config["seeds"]:
        targets += [run_artifact(ds, "seed_summary") for ds in config["targets"]]
    if paper_table_adds_value():
        targets += [results_artifact("paper_table"), results_artifact("paper_table_csv")]
    return targets


def paper_table_reports():
    """What the table across datasets reads: each target's summary over its seeds (with `seeds`), else its
    eval.json."""
    name = "seed_summary" if config["seeds"] else "eval_json"
    return [run_artifact(ds, name) for ds in config["targets"]]


def paper_table_adds_value():
    """Whether plain `snakemake` (the `all` target) builds the table across datasets. It does where the table
    says more than the run's closing tables: over two or more target datasets, or beside a dataset whose
    format the paper reports figures for. `snakemake paper_table` builds it in any case."""
    from ddb.paper_table import PUBLISHED_WGA

    return len(config["targets"]) > 1 or any(DATASETS[ds]["format"] in PUBLISHED_WGA for ds in config["targets"])


def step_artifacts():
    """Every artifact of the target datasets, for the `all` rule: the outputs of each rule ddb.steps marks
    `in_all`, where the dataset needs it. Snakemake rebuilds a missing intermediate file only when a job that
    reads it has to run anyway, so without this a deleted or lost one (an inpaint shard, a mask shard, a
    model) would not be redone while eval.json is up to date. Listed, it is rebuilt with what depends on
    it, nothing upstream."""
    files = []
    for ds in config["targets"]:
        for step in STEPS:
            for rule_ in step.rules:
                if rule_.in_all and rule_.runs != "seed" and rule_.needed_for(DATASETS[ds]):
                    outputs = getattr(rules, rule_.name).output
                    for values in wildcard_values(ds, rule_.wildcards):
                        files += expand(outputs, ds=ds, **values)
    return list(dict.fromkeys(files))


def wildcard_values(ds, names):
    """Every combination of the wildcards ``names`` (of a rule's outputs) for run ``ds``: candidates, classes,
    class pairs (or the source classes alone), and each source class's shards."""
    combinations = [{}]
    if "cand" in names:
        combinations = [{"cand": cand} for cand in tune_candidates(ds)]
    if "cls" in names:
        combinations = [{**c, "cls": cls} for c in combinations for cls in classes_of(ds)]
    if "dst" in names:
        combinations = [{**c, "src": src, "dst": dst} for c in combinations for src, dst in pairs_of(ds)]
    elif "src" in names:
        combinations = [{**c, "src": src} for c in combinations for src in source_classes(ds)]
    if "n" in names:
        combinations = [{**c, "n": n} for c in combinations for n in shards_of(ds, c["src"])]
    unknown = set(names) - {"cand", "cls", "src", "dst", "n"}
    if unknown:
        raise WorkflowError(f"ddb.steps: no values for wildcard(s) {', '.join(sorted(unknown))} in the `all` rule")
    return combinations


STARTED = time.time()


def print_eval_summaries():
    import json

    from ddb.evaluate import format_comparison
    from ddb.summary import format_summary
    from ddb.tuning import describe_selection

    for ds in config["targets"]:
        target = artifact_path(R, ds, "eval_json")
        if target.exists():
            summary = json.loads(target.read_text())
            tuned_line = describe_selection(summary)  # which tuned candidate DDB is (rules/tune.smk)
            print(f"\n{format_comparison(summary)}" + (f"\n{tuned_line}" if tuned_line else "") + "\n")
    for ds in config["datasets"]:
        summary_path = artifact_path(R, ds, "seed_summary")
        # only where this invocation wrote it: the table of a summary made by an earlier run would mislead
        if config["seeds"] and summary_path.exists() and summary_path.stat().st_mtime >= STARTED:
            print(f"\n{format_summary(json.loads(summary_path.read_text()))}\n")
    table = results_artifact_path(R, "paper_table")
    if table.exists() and table.stat().st_mtime >= STARTED:
        print(f"\n{table}:\n{table.read_text()}")


def check_dataset_roots():
    """Refuse to mix results of two different dataset roots under one results folder."""
    for name, entry in DATASETS.items():
        recorded = artifact_path(R, name, "dataset_root")
        if recorded.exists() and not config["allow_root_change"]:
            previous = recorded.read_text().strip()
            if previous != entry["root"]:
                raise WorkflowError(
                    f"{recorded}: results of dataset {name!r} were made from root {previous!r}, but the config "
                    f"now says {entry['root']!r}\n  fix: use another results folder (config key `results`), "
                    f"or rerun with --config allow_root_change=True (capital T: Snakemake reads `true` as text) "
                    f"to rebuild them from the new root")


check_dataset_roots()


def check_requested_data():
    """Stop before anything is planned if a dataset the requested targets need lacks its data (a missing
    root, or one without its layout's key files): a dry run and a cluster run alike (ddb.datasets.roots)."""
    from ddb.datasets.roots import check_root, requested_datasets
    from ddb.targets import snakemake_targets

    targets = None if workflow.remote_exec else snakemake_targets()
    if targets is None:
        return
    for name in requested_datasets(targets, results=R, datasets=config["datasets"], default=config["targets"]):
        try:
            check_root(name, config["datasets"][name])
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
    """The classes that are a source of some pair, in class-index order."""
    return sorted({src for src, _ in pairs_of(ds)}, key=classes_of(ds).index)

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
    """report/tune.html of each tuned target (visualize_all)."""
    return [run_artifact(ds, "report_tune_html") for ds in config["targets"] if tuned(ds)]
