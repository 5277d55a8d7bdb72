"""Training: the BoT losses, the schedule, a tiny end-to-end run, exact resume, clear errors."""

from __future__ import annotations

import pytest
import torch

from shufflebits.cli import main
from shufflebits.data import generate_world
from shufflebits.engine.losses import batch_hard_triplet_loss
from shufflebits.engine.train import FINAL_LR_FACTOR, lr_factor, train
from shufflebits.errors import ShuffleBitsError
from shufflebits.models import build_extractor

SIZE = (64, 32)
TINY = dict(batch_size=16, num_instances=4, size=SIZE, progress=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    generate_world(root, identities=16, world_seed=7, size=SIZE, images_per_identity=4, progress=False)
    return root


def test_batch_hard_triplet_picks_hardest_pairs():
    features = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [0.0, 2.5]], requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1])
    # every anchor's farthest positive (1.0 or 0.5) is nearer than its nearest negative minus 0.3
    assert batch_hard_triplet_loss(features, labels, margin=0.3).item() == pytest.approx(0.0)
    # margin 1.5: anchor 0 -> 1 - 2 + 1.5, anchor 1 -> 1 - sqrt(5) + 1.5, anchors 2 and 3 -> 0
    loss = batch_hard_triplet_loss(features, labels, margin=1.5)
    expected = (0.5 + max(0.0, 2.5 - 5**0.5) + 0.0 + 0.0) / 4
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    loss.backward()
    assert torch.isfinite(features.grad).all()


def test_schedule_warms_up_then_decays():
    assert lr_factor(0.0) == pytest.approx(FINAL_LR_FACTOR)
    assert lr_factor(0.05) < lr_factor(0.1) == pytest.approx(1.0)
    assert lr_factor(0.5) < 1.0
    assert lr_factor(1.0) == pytest.approx(FINAL_LR_FACTOR)


def test_cli_trains_and_writes_a_loadable_checkpoint(world, tmp_path, capsys):
    out = tmp_path / "victim.pt"
    code = main(
        [
            "train",
            "--data",
            str(world),
            "--model",
            "osnet_x0_25",
            "--out",
            str(out),
            "--epochs",
            "1",
            "--size",
            "64x32",
            "--batch-size",
            "16",
            "--quiet",
        ]
    )
    assert code == 0
    assert "epoch 1/1" in capsys.readouterr().out
    checkpoint = torch.load(out, map_location="cpu", weights_only=True)
    assert checkpoint["format"] == "shufflebits-checkpoint" and checkpoint["version"] == 1
    assert checkpoint["model"] == "osnet_x0_25" and checkpoint["input_size"] == [64, 32]
    assert checkpoint["epoch"] == 1 and [entry["epoch"] for entry in checkpoint["history"]] == [1]
    assert checkpoint["num_classes"] == len(checkpoint["train_pids"]) >= 2
    assert all(torch.isfinite(torch.tensor(entry["loss"])) for entry in checkpoint["history"])
    extractor = build_extractor("osnet_x0_25", weights=str(out))
    assert extractor.input_size == SIZE
    assert extractor(sorted((world / "bounding_box_train").iterdir())[:3]).shape == (3, 512)


def test_resume_continues_exactly(world, tmp_path):
    straight = train(world, "osnet_x0_25", tmp_path / "straight.pt", epochs=2, seed=3, **TINY)
    # A budget far too small for a second epoch stops after the first (at least one always runs).
    first = train(world, "osnet_x0_25", tmp_path / "resumed.pt", epochs=2, seed=3, max_minutes=1e-6, **TINY)
    assert len(first.history) == 1
    resumed = train(world, "osnet_x0_25", tmp_path / "resumed.pt", epochs=2, seed=3, resume=True, **TINY)
    assert [entry["loss"] for entry in resumed.history] == [entry["loss"] for entry in straight.history]
    a = torch.load(straight.checkpoint, weights_only=True)
    b = torch.load(resumed.checkpoint, weights_only=True)
    assert b["epoch"] == 2
    assert all(torch.equal(a["state_dict"][key], b["state_dict"][key]) for key in a["state_dict"])
    with pytest.raises(ShuffleBitsError, match="seed=3"):
        train(world, "osnet_x0_25", tmp_path / "resumed.pt", epochs=2, seed=4, resume=True, **TINY)


def test_bad_data_folder_is_a_clear_error(tmp_path, capsys):
    missing, out = str(tmp_path / "missing"), str(tmp_path / "m.pt")
    code = main(["train", "--data", missing, "--model", "osnet_x0_25", "--out", out])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(ShuffleBitsError, match="bounding_box_train"):
        train(tmp_path / "empty", "osnet_x0_25", tmp_path / "m.pt", progress=False)
    assert not (tmp_path / "m.pt").exists()
