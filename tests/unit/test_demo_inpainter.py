"""The committed demo inpainter draws the *prompted* class: judged by a classifier that cannot cheat.

The demo's ERM model is spurious by design (it reads the background), so it cannot judge whether an
inpainted object has the target class's shape. The reference here is trained
on group-balanced demo images, where only the shape predicts the class: a small CNN with global max
pooling, which detects corners versus round edges anywhere in the image.
"""

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from ddb.datasets.synthetic import draw_sample
from ddb.inpainting import paste_back
from ddb.storage.images import to_square as square
from ddb.masking import box_mask, dilate
from ddb.models.classifier import eval_transform
from ddb.models.diffusion import load_inpaint_pipeline

BACKGROUNDS = ("land", "water")


def balanced_images(n_per_group: int, seed: int):
    images, labels = [], []
    for i in range(n_per_group):
        for y in (0, 1):
            for background in BACKGROUNDS:
                image, _ = draw_sample(seed, f"reference-{i}", y, background, 64)
                images.append(Image.fromarray(image))
                labels.append(y)
    return images, torch.tensor(labels)


@pytest.fixture(scope="module")
def shape_classifier():
    torch.manual_seed(0)
    transform = eval_transform(64)
    images, labels = balanced_images(100, seed=11)
    x = torch.stack([transform(im) for im in images])
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(32, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(8):
        for index in torch.randperm(len(x)).split(32):
            loss = nn.functional.cross_entropy(model(x[index]), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    test_images, test_labels = balanced_images(25, seed=12)
    with torch.no_grad():
        accuracy = (model(torch.stack([transform(im) for im in test_images])).argmax(1) == test_labels).float().mean()
    assert accuracy >= 0.9, f"the shape reference itself is not reliable ({accuracy:.2f})"
    return model, transform


def test_committed_inpainter_draws_the_target_class(shape_classifier):
    model, transform = shape_classifier
    pipeline = load_inpaint_pipeline("ddb:demo_inpainter", seed=0)
    sources, masks, targets, prompts = [], [], [], []
    for i in range(12):
        y = i % 2
        image, mask = draw_sample(5, f"source-{i}", y, BACKGROUNDS[(i // 2) % 2], 64)
        sources.append(Image.fromarray(image))
        masks.append(Image.fromarray(dilate(box_mask(mask), 2).astype(np.uint8) * 255))
        targets.append(1 - y)
        prompts.append(f"a photo of a {('landbird', 'waterbird')[1 - y]} bird")
    generated = pipeline(prompt=prompts, image=[square(s, 32) for s in sources],
                         mask_image=[square(m, 32, Image.NEAREST) for m in masks], height=32, width=32,
                         num_inference_steps=20, guidance_scale=7.5, output_type="np",
                         generator=[torch.Generator().manual_seed(i) for i in range(12)]).images
    composed = [paste_back((g * 255).round().astype(np.uint8), s, m) for g, s, m in zip(generated, sources, masks)]
    with torch.no_grad():
        predicted = model(torch.stack([transform(Image.fromarray(c)) for c in composed])).argmax(1)
        before = model(torch.stack([transform(s) for s in sources])).argmax(1)
    assert (before == 1 - torch.tensor(targets)).float().mean() >= 0.9  # sources read as their own class
    hit_rate = (predicted == torch.tensor(targets)).float().mean().item()
    assert hit_rate >= 0.75, f"only {hit_rate:.2f} of the inpainted images show the target class"
