"""The study end to end on the tiny ``smoke`` profile: results, report, browser, cache, seeds, HTTP.

One real run (module fixture) feeds most tests; a second fresh run with the same
seed checks that the leakage matrix is reproducible.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess

import numpy as np
import pytest

from shufflebits.cli import main
from shufflebits.errors import ShuffleBitsError
from shufflebits.study import get_profile, prepare_victim, run_study
from shufflebits.study.profiles import PROFILES
from shufflebits.ciphers import CIPHERS

from conftest import shared_file

SEED = 3
NONCE_FREE = ("plaintext", "shufflebits", "shufflebits-dim")  # rows that are a function of the seed alone
CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _close(a, b) -> bool:
    """Equal structure and text; floats equal to 1e-6 relative (NaN equals NaN)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6) or (math.isnan(a) and math.isnan(b))
    return a == b


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    return run_study("smoke", out, seed=SEED, progress=False)


def test_smoke_study_completes_every_stage(smoke):
    assert smoke.failures == {}
    results = json.loads(smoke.results_json.read_text())
    assert {"leakage", "reid", "throughput", "timings", "environment"} <= set(results)
    assert {row["cipher"] for row in results["leakage"]} == {"plaintext", *CIPHERS}
    for row in results["leakage"]:
        assert {"cipher", "attack", "metric", "value", "chance", "n"} <= set(row)
    assert set(results["reid"]["decrypted"]) == set(CIPHERS)
    for name, figures in results["reid"]["decrypted"].items():
        assert figures["bit_exact"] and figures["same_figures"], name
        assert figures["mAP"] == results["reid"]["plaintext"]["mAP"]
    assert results["throughput"]
    assert {"victim", "leakage", "reid", "throughput", "report", "total"} <= set(results["timings"])
    assert {"victim/user_world", "victim/victim_world", "victim/train_victim", "victim/extract_features"} <= set(results["timings"])
    assert results["environment"]["seeds"]["seed"] == SEED
    assert results["environment"]["profile"]["name"] == "smoke"
    assert results["training_history"]


def test_report_is_self_contained_and_embeds_every_grid(smoke):
    page = smoke.index_html.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    leakage_pngs = list((smoke.index_html.parent / "cache").glob("leakage-*/*.png"))
    assert leakage_pngs, "the attack stage wrote no reconstruction grid"
    # grids + training curves + throughput bars + stage times
    assert page.count('src="data:image/png;base64,') >= len(leakage_pngs) + 3
    assert (smoke.index_html.parent / "leakage.json").is_file()


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="headless chromium is not installed")
def test_browser_renders_the_matrix_and_decodes_every_image(smoke, tmp_path):
    url = smoke.index_html.resolve().as_uri()
    flags = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True).stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    decoded = int(re.search(r'data-images-decoded="(\d+)"', body).group(1))
    total = int(re.search(r'data-images-total="(\d+)"', body).group(1))
    assert total >= 4 and decoded == total
    matrix = re.search(r'<table id="leakage-matrix">(.*?)</table>', dom, re.S).group(1)
    for cipher in ("plaintext", *CIPHERS):
        assert f'<td class="name">{cipher}</td>' in matrix
    screenshot = tmp_path / "page.png"
    subprocess.run([*flags, "--window-size=1200,2000", f"--screenshot={screenshot}", url], capture_output=True, timeout=120, check=True)
    from PIL import Image

    pixels = np.asarray(Image.open(screenshot).convert("L"))
    assert pixels.std() > 10  # text, tables and images, not a blank page


def test_cli_rerun_resumes_from_the_cache(smoke, capsys):
    out = smoke.index_html.parent
    first = json.loads(smoke.results_json.read_text())
    assert main(["study", "--profile", "smoke", "--out", str(out), "--seed", str(SEED)]) == 0
    printed = capsys.readouterr().out
    assert f"report: {smoke.index_html.resolve()}" in printed
    assert "plaintext" in printed and "wall time" in printed
    again = json.loads(smoke.results_json.read_text())
    assert set(again["victim"]["cached_stages"]) == {"user_world", "victim_world", "train_victim", "extract_features"}
    assert again["leakage"] == first["leakage"]
    assert again["environment"]["command"].startswith("shufflebits study --profile smoke")


def test_same_seed_repeats_features_and_leakage_matrix_in_a_fresh_folder(smoke, tmp_path):
    """World, training and extraction again from nothing; then the nonce-free rows of the matrix.

    Ciphers with per-vector nonces draw fresh random nonces in every run, so only
    plaintext, ShuffleBits fixed and per-dimension rows are a function of the seed.
    """
    from shufflebits.attacks.leakage import leakage_matrix, write_leakage

    with prepare_victim("smoke", smoke.index_html.parent, seed=SEED, progress=False) as first:
        with prepare_victim("smoke", tmp_path, seed=SEED, progress=False) as again:
            assert again.cached == []
            for name in ("attacker", "user_query", "user_gallery"):
                assert np.array_equal(getattr(first, name).features, getattr(again, name).features)
            result = leakage_matrix(
                again.attacker, again.user_query, again.user_gallery, again.embed,
                profile=PROFILES["smoke"].attacks, seed=SEED, progress=False, ciphers=NONCE_FREE[1:],
            )
    json_path, _ = write_leakage(result, tmp_path)
    expected = [row for row in smoke.results["leakage"] if row["cipher"] in NONCE_FREE]
    # Float reductions over partially decrypted (huge) values may differ in the last bits; the report shows 3 decimals.
    assert _close(json.loads(json_path.read_text()), expected)


def test_http_black_box_gives_the_in_process_features(smoke):
    out = smoke.index_html.parent
    with prepare_victim("smoke", out, seed=SEED, progress=False) as local:
        with prepare_victim("smoke", out, seed=SEED, via_http=True, progress=False) as remote:
            assert remote.black_box.startswith("http://127.0.0.1:")
            assert "extract_features" not in remote.cached  # the HTTP run queried the service itself
            for name in ("attacker", "user_query", "user_gallery"):
                assert np.array_equal(getattr(local, name).features, getattr(remote, name).features)
            images = local.user_query.images[:3]
            assert np.array_equal(local.embed(images), remote.embed(images))
            diverged, black = images.copy(), images.copy()
            diverged[0, :, 0, 0], black[0, :, 0, 0] = np.nan, 0.0  # a NaN pixel is sent as black
            assert np.array_equal(remote.embed(diverged), local.embed(black))
    assert images.shape[1:] == (3, *get_profile("smoke").recon_size)


def test_real_dataset_and_real_weights_path(tmp_path):
    weights = shared_file("weights/osnet_x0_25_msmt17.pth")
    root = shared_file("data/market1501-mini")
    attributes = shared_file("data/attributes/market_attribute.mat")
    with prepare_victim(
        "smoke", tmp_path, weights=weights, dataset="market1501", root=root, attributes=attributes, progress=False
    ) as victim:
        assert victim.attacker.features.shape == (16, 512)
        assert victim.attacker.features.dtype == np.float32
        assert (victim.attacker.labels >= 0).any()
        assert "victim_world" not in victim.timings  # real weights: nothing to train
        assert victim.history is None


@pytest.mark.parametrize(
    "args, message",
    [
        (["--victim", "onnx:/nonexistent/model.onnx"], "does not exist"),
        (["--weights", "/nonexistent/w.pth"], "does not exist"),
        (["--dataset", "market1501"], "needs --root"),
        (["--root", "/tmp"], "need --dataset"),
        (["--device", "tpu"], "unknown device"),
    ],
)
def test_bad_options_fail_at_once_with_one_line(tmp_path, capsys, args, message):
    assert main(["study", "--profile", "smoke", "--out", str(tmp_path / "out"), *args]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and "\n" not in error
    assert not (tmp_path / "out").exists()


def test_profiles_fit_their_purpose():
    quick, default, paper = (get_profile(name) for name in ("quick", "default", "paper"))
    assert paper.image_size == (256, 128) and paper.attacks.recon_variants == ("autoencoder", "gan")
    assert quick.victim_identities < default.victim_identities < paper.victim_identities
    assert quick.epochs <= default.epochs <= paper.epochs
    assert quick.user_identities <= default.user_identities <= paper.user_identities
    assert min(p.victim_images_per_identity for p in (quick, default, paper)) >= 4  # P x K batches with K = 4
    with pytest.raises(ShuffleBitsError, match="unknown study profile"):
        get_profile("huge")
