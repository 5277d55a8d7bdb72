"""The victim zoo: retraining an entry end to end, verified loading by name, and one-line refusals."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image

from shufflebits.cli import main
from shufflebits.engine.zoo import retrain
from shufflebits.errors import ShuffleBitsError
from shufflebits.models import build_extractor, create_model, zoo
from shufflebits.study.config import StudyConfig
from shufflebits.study.victim import prepare_victim

MICRO = zoo.ZooEntry(
    name="osnet_x0_25-micro-test",
    model="osnet_x0_25",
    input_size=(64, 32),
    world_seed=7,
    identities=12,
    images_per_identity=(4, 5),
    epochs=1,
    batch_size=16,
    lr=3e-3,
    seed=0,
    user_world_seed=8,
    user_identities=8,
)


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    """A one-epoch zoo entry trained into a temporary weights folder."""
    weights = tmp_path_factory.mktemp("weights")
    work = tmp_path_factory.mktemp("work")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(zoo, "WEIGHTS_DIR", weights)
        patch.setitem(zoo.ZOO, MICRO.name, MICRO)
        card = retrain(MICRO.name, work, progress=False)
        yield {"card": card, "weights": weights, "work": work, "patch": patch}


def _images(n: int = 6) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, size=(64, 32, 3), dtype=np.uint8) for _ in range(n)]


def test_card_records_recipe_figures_and_the_file_digest(micro):
    card = json.loads((micro["weights"] / f"{MICRO.name}.json").read_text())
    blob = (micro["weights"] / f"{MICRO.name}.safetensors").read_bytes()
    assert card["sha256"] == hashlib.sha256(blob).hexdigest() and card["bytes"] == len(blob) <= 10 * 2**20
    assert card["recipe"] == json.loads(json.dumps(MICRO.as_dict()))
    assert card["training"]["epochs"] == 1 and card["training"]["wall_seconds"] > 0
    for world in ("own_world", "user_world"):
        assert all(0.0 <= card[world][key] <= 1.0 for key in ("rank1", "mAP", "mINP"))
        assert card[world]["queries"] > 0


def test_loading_by_name_gives_the_trained_network(micro):
    checkpoint = micro["work"] / f"{MICRO.name}.pt"
    reference = build_extractor("osnet_x0_25", weights=str(checkpoint))  # the training checkpoint itself
    by_name = build_extractor("osnet_x0_25", pretrained=MICRO.name)
    assert by_name.input_size == reference.input_size == (64, 32)
    np.testing.assert_array_equal(by_name(_images()), reference(_images()))
    model = create_model("osnet_x0_25", pretrained=MICRO.name)
    assert not model.training
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    assert torch.equal(model.state_dict()["conv1.conv.weight"], state["conv1.conv.weight"])  # torchreid key names


def test_retraining_resumes_and_rewrites_the_same_bytes(micro):
    before = (micro["weights"] / f"{MICRO.name}.safetensors").read_bytes()
    card = retrain(MICRO.name, micro["work"], progress=False)  # the checkpoint is complete: nothing retrains
    assert (micro["weights"] / f"{MICRO.name}.safetensors").read_bytes() == before
    assert card["own_world"] == micro["card"]["own_world"]


def test_a_study_uses_the_zoo_victim_and_records_its_card(micro, tmp_path):
    config = StudyConfig.from_profile("smoke", pretrained=MICRO.name, progress=False)
    assert not config.victim.trained_here
    with prepare_victim(config, tmp_path) as victim:
        assert victim.card["sha256"] == micro["card"]["sha256"]
        assert "zoo victim" in victim.victim and victim.history is None
    assert not any(path.name.startswith("train_victim") for path in (tmp_path / "cache").iterdir())


def test_a_changed_weights_file_is_refused(micro, tmp_path):
    path = micro["weights"] / f"{MICRO.name}.safetensors"
    original = path.read_bytes()
    try:
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        with pytest.raises(ShuffleBitsError, match="do not match their model card"):
            create_model("osnet_x0_25", pretrained=MICRO.name)
    finally:
        path.write_bytes(original)


def test_a_corrupt_card_or_missing_weights_is_refused(micro):
    card_path = micro["weights"] / f"{MICRO.name}.json"
    original = card_path.read_text()
    try:
        card_path.write_text("{not json")
        with pytest.raises(ShuffleBitsError, match="unreadable"):
            create_model("osnet_x0_25", pretrained=MICRO.name)
    finally:
        card_path.write_text(original)
    with pytest.raises(ShuffleBitsError, match=r"no trained weights"):
        create_model("osnet_x0_25", pretrained="osnet_x0_25-synth-256x128")


def test_unknown_names_and_wrong_models_are_one_line_errors(micro, tmp_path, capsys):
    with pytest.raises(ShuffleBitsError, match=r"unknown zoo victim 'nope'.*osnet_x0_25-synth-128x64"):
        create_model("osnet_x0_25", pretrained="nope")
    with pytest.raises(ShuffleBitsError, match="is a osnet_x0_25, not resnet50_bot"):
        create_model("resnet50_bot", pretrained=MICRO.name)
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(_images(1)[0]).save(images / "0001_c1s1_000001_01.jpg")
    out = tmp_path / "f.npz"
    code = main(
        ["extract", "--model", "osnet_x0_25", "--pretrained", "nope", "--images", str(images), "--out", str(out)]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "unknown zoo victim" in err and "\n" not in err and not out.exists()


def test_zoo_list_names_every_entry(micro, capsys):
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in zoo.ZOO)
    assert f"{MICRO.name}: osnet_x0_25 at 64x32, 1 epochs" in out


def test_a_profile_whose_zoo_victim_is_not_installed_trains_one_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path)  # an installation without zoo weights
    config = StudyConfig.from_profile("quick")
    assert config.victim.trained_here and config.victim.untrained_zoo == "osnet_x0_25-synth-128x64"
    explicit = StudyConfig.from_profile("quick", pretrained="osnet_x0_25-synth-128x64")
    with pytest.raises(ShuffleBitsError, match="no trained weights"):
        explicit.validate()
    assert StudyConfig.from_profile("quick", train_victim=True).victim.untrained_zoo is None
