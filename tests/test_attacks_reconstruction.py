"""Image reconstruction: shapes, learning, the black-box evaluation and the grids."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from shufflebits.attacks.attribute import AttributeInference
from shufflebits.attacks.decoders import SurrogatePerceptual
from shufflebits.attacks.reconstruction import Reconstructor
from shufflebits.attacks.reconstruction_eval import evaluate_reconstruction, reconstruction_grid, save_grid
from shufflebits.errors import ShuffleBitsError
from test_attacks_helpers import make_world, one_torch_thread  # noqa: F401 (autouse fixture)


@pytest.fixture(scope="module")
def world():
    return make_world(identities=40, per_id=4, d=48, size=(16, 8))


def test_autoencoder_learns_and_predicts_images(world):
    attacker, query, _, _ = world
    model = Reconstructor(epochs=30, batch_size=16, width=32).fit(attacker.features, attacker.images)
    out = model.predict(query.features)
    assert out.shape == (len(query), 3, 16, 8) and out.dtype == np.float32
    assert model.loss_history_[-1] < 0.7 * model.loss_history_[0]
    # unseen people: closer than the attacker's mean image (measured MSE 0.021 against 0.045), and closer to the
    # person behind each feature vector than to someone else (0.051)
    mean_image = -np.mean((attacker.images.mean(axis=0) - query.images.astype(np.float64)) ** 2)
    others = query.images[np.random.default_rng(0).permutation(len(query))]
    assert model.score(query.features, query.images) > max(mean_image, model.score(query.features, others))


def test_gan_with_the_surrogate_perceptual_network_runs(world):
    attacker, query, _, _ = world
    model = Reconstructor(variant="gan", epochs=2, batch_size=32, width=32, surrogate_epochs=1).fit(
        attacker.features, attacker.images
    )
    assert isinstance(model.perceptual_, SurrogatePerceptual)
    assert not any(p.requires_grad for p in model.perceptual_.parameters())
    assert model.predict(query.features[:3]).shape == (3, 3, 16, 8)
    assert len(model.loss_history_) == 2


def test_feature_consistency_through_the_attackers_copy_brings_reconstructions_closer(world):
    attacker, query, _, embed = world
    copy = embed.module()
    assert np.allclose(copy(torch.from_numpy(query.images)).detach().numpy(), embed(query.images), atol=1e-5)
    settings = dict(epochs=20, width=16, batch_size=32)
    plain = Reconstructor(**settings).fit(attacker.features, attacker.images)
    consistent = Reconstructor(variant="consistency", feature_model=copy, **settings).fit(
        attacker.features, attacker.images
    )
    distance = {
        name: evaluate_reconstruction(model.predict(query.features), query, embed)["cosine_distance"]
        for name, model in (("pixels", plain), ("consistency", consistent))
    }
    assert distance["consistency"] < 0.9 * distance["pixels"]  # measured 0.091 against 0.115
    assert copy.scale.requires_grad  # the caller's model is left as it was: training used a frozen copy
    with pytest.raises(ShuffleBitsError, match="plaintext"):
        Reconstructor(variant="consistency", view="invariants", feature_model=copy, epochs=1).fit(
            attacker.features.view(np.uint32), attacker.images
        )


def test_feature_consistency_without_weights_distils_a_surrogate(world):
    attacker, query, _, _ = world
    model = Reconstructor(variant="consistency", epochs=2, width=8, batch_size=32, surrogate_epochs=1)
    out = model.fit(attacker.features, attacker.images).predict(query.features[:4])
    assert out.shape == (4, 3, 16, 8) and np.isfinite(model.loss_history_).all()


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
        assert image.format == "PNG" and np.array_equal(
            np.asarray(image.convert("RGB")),
            reconstruction_grid(query.images, query.images[:, :, ::2, ::2], columns=4, count=8),
        )


def test_grid_puts_each_original_beside_its_reconstruction():
    rng = np.random.default_rng(0)
    originals = rng.uniform(0, 1, (3, 3, 8, 4)).astype(np.float32)
    recon = rng.uniform(0, 1, (3, 3, 8, 4)).astype(np.float32)
    grid = reconstruction_grid(originals, recon, columns=2, count=3)
    scale = grid.shape[0] // (2 * (8 + 2))  # two rows of pairs, 2 px apart; scaled up to >= 256 px
    assert grid.shape == (2 * 10 * scale, 2 * (2 * 4 + 4) * scale, 3)
    pixel = grid[::scale, ::scale]
    assert np.array_equal(pixel[10:18, 0:4], _uint8(originals[2]))  # third pair, second row, left
    assert np.array_equal(pixel[0:8, 16:20], _uint8(recon[1]))  # second pair, first row, right


def _uint8(image: np.ndarray) -> np.ndarray:
    return (image.transpose(1, 2, 0) * 255).round().astype(np.uint8)


def test_bad_inputs_raise(world):
    attacker, _, _, _ = world
    with pytest.raises(ShuffleBitsError):
        Reconstructor(variant="vae").fit(attacker.features, attacker.images)
    with pytest.raises(ShuffleBitsError):
        Reconstructor(image_size=(20, 8), epochs=1).fit(attacker.features, attacker.images)
    with pytest.raises(ShuffleBitsError):
        Reconstructor(epochs=1).fit(attacker.features, None)
