"""The realism gauge: statistics against direct computation, the domain classifier at its extremes, the CLI."""

from __future__ import annotations

import json

import numpy as np

from conftest import shared_file
from shufflebits.cli import main
from shufflebits.data import load_market1501
from shufflebits.models import build_extractor
from shufflebits.study.realism import domain_gap, feature_statistics


def test_feature_statistics_match_a_direct_computation():
    rng = np.random.default_rng(0)
    features = np.maximum(rng.normal(size=(40, 16)), 0).astype(np.float32)
    pids = np.repeat(np.arange(10), 4)
    stats = feature_statistics(features, pids)
    assert stats["zero_fraction"] == np.mean(features == 0)
    assert np.isclose(stats["mean_norm"], np.mean([np.linalg.norm(f) for f in features.astype(np.float64)]))
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    exact = np.mean([unit[i] @ unit[j] for i in range(40) for j in range(40) if pids[i] != pids[j]])
    assert abs(stats["mean_cosine_other_identity"] - exact) < 0.01  # sampled pairs vs all pairs


def test_domain_classifier_is_at_chance_on_one_distribution_and_perfect_on_two():
    rng = np.random.default_rng(1)
    same = domain_gap(rng.normal(size=(200, 8)), rng.normal(size=(60, 8)))
    apart = domain_gap(rng.normal(size=(200, 8)), rng.normal(loc=3.0, size=(60, 8)))
    assert abs(same["balanced_accuracy"] - 0.5) < 0.15 and apart["balanced_accuracy"] > 0.97


def test_cli_gauges_real_crops_against_the_synthetic_world(tmp_path, capsys):
    images = shared_file("data/market1501-mini")
    attributes = shared_file("data/attributes/market_attribute.mat")
    weights = shared_file("weights/osnet_x0_25_msmt17.pth")
    out = tmp_path / "realism.json"
    args = ["realism", "--images", str(images), "--attributes", str(attributes), "--model", "osnet_x0_25"]
    code = main([*args, "--weights", str(weights), "--synthetic-identities", "24", "--json", str(out), "--no-progress"])
    assert code == 0
    gauge = json.loads(out.read_text())
    real_set = load_market1501(images, attributes)
    records = [r for r in real_set.train + real_set.query + real_set.gallery if r.pid > 0]
    features = build_extractor("osnet_x0_25", weights=str(weights))([r.path for r in records])
    assert gauge["real"]["n"] == len(records) == 18
    assert gauge["real"]["zero_fraction"] == float(np.mean(features == 0))  # post-ReLU: about a third
    assert 0.0 <= gauge["domain_classifier"]["balanced_accuracy"] <= 1.0
    transfer = gauge["attribute_transfer"]["attributes"]
    assert {"gender", "up_colour", "backpack"} <= set(transfer)
    assert all(per["n"] <= 18 and 0.0 < per["chance"] <= 1.0 for per in transfer.values())
    table = capsys.readouterr().out
    assert "exact-zero fraction" in table and "balanced accuracy" in table and "gender" in table


def test_study_on_real_images_gauges_them_against_its_synthetic_world(tmp_path):
    from shufflebits.study import StudyConfig, prepare_victim
    from shufflebits.study.realism import realism_stages
    from shufflebits.study.report.sections import realism_html
    from shufflebits.study.run import study_stages
    from shufflebits.study.stages import StageRunner

    config = StudyConfig.from_profile(
        "smoke",
        weights=shared_file("weights/osnet_x0_25_msmt17.pth"),
        dataset="market1501",
        root=shared_file("data/market1501-mini"),
        attributes=shared_file("data/attributes/market_attribute.mat"),
        progress=False,
    )
    assert realism_stages(StudyConfig.from_profile("smoke", progress=False)) == []  # synthetic: nothing to gauge
    runner = StageRunner(study_stages(config), config, tmp_path)
    try:
        gauge = runner.run(targets=("realism",))["realism"]
    finally:
        runner.values["black_box"].close()
    with prepare_victim(config, tmp_path) as victim:  # the same cache: the real images' leaked features
        real = np.concatenate([victim.attacker.features, victim.user_query.features, victim.user_gallery.features])
    assert gauge["real"]["n"] == len(real) and gauge["real"]["zero_fraction"] == float(np.mean(real == 0))
    assert gauge["synthetic"]["n"] > 0 and gauge["synthetic"]["mean_norm"] > 0
    assert {"gender", "backpack"} <= set(gauge["attribute_transfer"]["attributes"])
    page = realism_html(gauge)
    assert 'id="realism-statistics"' in page and 'id="realism-transfer"' in page and "gender" in page
