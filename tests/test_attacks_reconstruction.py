"""Image reconstruction: shapes, learning, the black-box evaluation and the grids."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from shufflebits.attacks.attribute import AttributeInference
from shufflebits.attacks.reconstruction import Reconstructor, SurrogatePerceptual, evaluate_reconstruction, save_grid
from shufflebits.errors import ShuffleBitsError
from test_attacks_helpers import make_world, one_torch_thread  # noqa: F401 (autouse fixture)


@pytest.fixture(scope="module")
def world():
    return make_world(identities=40, per_id=4, d=48, size=(16, 8))


def test_autoencoder_learns_and_predicts_images(world):
    attacker, query, _, _ = world
    model = Reconstructor(epochs=8, batch_size=32, width=32).fit(attacker.features, attacker.images)
    out = model.predict(query.features)
    assert out.shape == (len(query), 3, 16, 8) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert model.loss_history_[-1] < 0.7 * model.loss_history_[0]


def test_gan_with_the_surrogate_perceptual_network_runs(world):
    attacker, query, _, _ = world
    model = Reconstructor(variant="gan", epochs=2, batch_size=32, width=32, surrogate_epochs=1).fit(
        attacker.features, attacker.images
    )
    assert isinstance(model.perceptual_, SurrogatePerceptual)
    assert not any(p.requires_grad for p in model.perceptual_.parameters())
    assert model.predict(query.features[:3]).shape == (3, 3, 16, 8)
    assert len(model.loss_history_) == 2


def test_evaluation_goes_back_through_the_black_box(world, tmp_path):
    attacker, query, gallery, embed = world
    perfect = evaluate_reconstruction(query.images, query, embed, gallery=gallery, baseline_images=attacker.images)
    assert perfect["cosine_distance"] < 1e-6  # the originals re-embed to themselves
    assert perfect["chance"] > 0.01 and perfect["mean_image_distance"] > 0.01
    assert perfect["noise_distance"] > perfect["cosine_distance"]
    assert perfect["rank1"] > perfect["rank1_chance"]
    model = AttributeInference(epochs=3, hidden=32).fit(attacker.features, attacker.labels)
    result = evaluate_reconstruction(attacker.images[: len(query)], query, embed, attribute_model=model)
    assert "rank1" not in result and result["attributes"]["n"] == len(query)
    path = tmp_path / "grid.png"
    save_grid(query.images, query.images[:, :, ::2, ::2], path, columns=4, count=8)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > image.height


def test_bad_inputs_raise(world):
    attacker, _, _, _ = world
    with pytest.raises(ShuffleBitsError):
        Reconstructor(variant="vae").fit(attacker.features, attacker.images)
    with pytest.raises(ShuffleBitsError):
        Reconstructor(image_size=(20, 8), epochs=1).fit(attacker.features, attacker.images)
    with pytest.raises(ShuffleBitsError):
        Reconstructor(epochs=1).fit(attacker.features, None)
