"""Rule select_low_loss: per-sample losses of one class and its K lowest."""
import logging
from dataclasses import asdict

from ddb.storage.reading import read_parquet
from ddb.storage.atomic import write_parquet
from ddb.low_loss import per_sample_losses, select_low_loss
from ddb.models.classifier import load_classifier
from ddb.precision import classifier_precision
from ddb.scripting import device, run_step
from ddb.settings import dataset_settings


@run_step
def main(job):
    settings = dataset_settings(job.params.cfg, job.wildcards.ds)
    classifier, cls = settings.classifier, job.wildcards.cls
    y = settings.classes.index(cls)
    manifest = read_parquet(job.input.manifest)
    rows = manifest[(manifest["split"] == "train") & (manifest["y"] == y)]
    model, _ = load_classifier(job.input.model, device())
    losses = per_sample_losses(model, rows, classifier.image_size, settings.low_loss.batch_size, device(),
                               classifier.transform, classifier_precision(asdict(classifier), device()))
    k = settings.low_loss.k[y]
    selected = select_low_loss(losses, k)
    if len(losses) < k:  # on the terminal too (run_step): Ψ and D_i are then not the K lowest-loss images
        logging.getLogger("ddb.select_low_loss").warning(
            f"{cls} has {len(losses)} training images, fewer than K={k}: all of them are kept "
            "(lower low_loss.k to silence this)")
    print(f"{cls}: kept {len(selected)} of {len(losses)} (K={k}), "
          f"loss {selected['loss'].min():.4f}..{selected['loss'].max():.4f}")
    write_parquet(selected, job.output[0])


main(snakemake)
