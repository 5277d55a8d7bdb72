"""The study end to end on the tiny ``smoke`` profile: results, report, browser, cache, seeds, HTTP.

One real run (module fixture) feeds most tests; a second fresh run with the same
seed checks that the leakage matrix is reproducible. The stage runner and the
config are also tested on their own, with toy stages.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import time

import numpy as np
import pytest
import torch

from conftest import shared_file
from shufflebits.ciphers.catalogue import cipher_names, installed, spec
from shufflebits.ciphers.cost import CKKS_ENCRYPTED_QUERY
from shufflebits.cli import build_parser, main, options
from shufflebits.errors import ShuffleBitsError
from shufflebits.study import ConfigError, StudyConfig, get_profile, prepare_victim, run_study
from shufflebits.study.profiles import PROFILES
from shufflebits.study.stages import Stage, StageRunner
from shufflebits.study.transfer import prepare_transfer

CIPHERS = tuple(filter(installed, cipher_names()))  # ckks with the optional `he` extra
ROW_CIPHERS = cipher_names(homomorphic=False)  # per-vector ciphers: decryption, transfer rows
SEED = 3
CONFIG = StudyConfig.from_profile("smoke", seed=SEED, progress=False)
CACHED_STAGES = {
    "user_world",
    "victim_world",
    "train_victim",
    "own_world_figures",
    "extract_features",
    "transfer_features",  # the smoke victim is trained here, so the zoo victim judges reconstructions (transfer)
    "leakage",
}
CHROMIUM = None if os.environ.get("SHUFFLEBITS_SKIP_BROWSER") == "1" else shutil.which("chromium")  # test.sh's switch
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _same(a, b) -> bool:
    """Equal structure, text and floats, exactly (NaN equals NaN)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    return run_study(CONFIG, out)


def test_smoke_study_completes_every_stage(smoke):
    assert smoke.failures == {}
    results = json.loads(smoke.results_json.read_text())
    assert {"leakage", "reid", "throughput", "timings", "environment"} <= set(results)
    assert {row["cipher"] for row in results["leakage"]} == {"image", "plaintext", *CIPHERS}  # image: pixel probe
    victim = results["victim"]
    assert victim["pretrained"] is None and victim["card"]["source"] == "measured in this run"
    assert all(0.0 <= victim["card"]["own_world"][key] <= 1.0 for key in ("rank1", "mAP", "mINP"))
    assert victim["card"]["user_world"] == {key: results["reid"]["plaintext"][key] for key in ("rank1", "mAP", "mINP")}
    assert 'id="victim-card"' in smoke.index_html.read_text()
    for row in results["leakage"]:
        assert {"cipher", "attack", "metric", "value", "chance", "n"} <= set(row)
    assert set(results["reid"]["decrypted"]) == set(cipher_names(invertible=True, homomorphic=False))  # not BioHash
    for name, figures in results["reid"]["decrypted"].items():
        if not spec(name).exact:  # DCPE, rotation: float rounding (and DCPE's noise) survive decryption
            assert not figures["bit_exact"], name
            continue
        assert figures["bit_exact"] and figures["same_figures"], name
        assert figures["mAP"] == results["reid"]["plaintext"]["mAP"]
    assert results["throughput"]
    stages = {"user_world", "victim_world", "train_victim", "load_victim", "own_world_figures", "black_box"}
    stages.add("extract_features")
    assert set(results["timings"]) == stages | {
        "transfer_features", "leakage", "reid", "throughput", "cost", "frontier", "report", "total"
    }  # fmt: skip
    assert victim["transfer_model"] == CONFIG.transfer == "osnet_x0_25-synth-128x64"
    transfer = [row for row in results["leakage"] if row["metric"].endswith("_transfer")]
    reconstructed = {"plaintext", *ROW_CIPHERS, *(name for name in cipher_names(homomorphic=True) if installed(name))}
    assert {row["cipher"] for row in transfer} == reconstructed  # ckks: decoders on its coefficients
    assert all(row["transfer_model"] == CONFIG.transfer for row in transfer)
    assert results["config"] == json.loads(json.dumps(CONFIG.as_dict()))
    assert results["environment"]["seeds"]["seed"] == SEED
    assert results["environment"]["profile"]["name"] == "smoke"
    assert results["training_history"]
    assert set(results["stages"]) == set(results["timings"]) - {"total"}
    for record in results["stages"].values():
        assert record["load"]["cpu_count"] >= 1 and record["load"]["load_1min"] >= 0
        assert record["overloaded"] == (record["load"]["load_1min"] > record["load"]["cpu_count"])
    for row in results["throughput"]:
        assert row["overloaded"] == (row["load_average"] > row["cpu_count"])
    he_rows = [CKKS_ENCRYPTED_QUERY] if "ckks" in CIPHERS else []  # CKKS also times an encrypted query
    assert [row["cipher"] for row in results["cost"]] == ["plaintext", *CIPHERS, *he_rows]
    assert all(row["gallery"] == CONFIG.profile.cost_gallery for row in results["cost"])
    sweep = results["frontier"]
    assert {p["cipher"] for p in sweep["points"]} == {"dcpe", "biohash"} and sweep["attribute_probe"]
    for point in sweep["points"]:
        assert 0 <= point["reid_rank1_ciphertext"] <= 1 and 0 <= point["unlinkability_dsys"] <= 1
        assert point["attr_bacc_mean"] is not None and point["n_query"] == victim["n_user_query"]
    assert results["load"]["load_1min"] >= max(r["load"]["load_1min"] for r in results["stages"].values())
    assert results["verdict"]["headline"] and len(results["verdict"]["checks"]) == 2


def test_report_is_self_contained_and_embeds_every_grid(smoke):
    page = smoke.index_html.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    leakage_pngs = list((smoke.index_html.parent / "cache").glob("leakage-*/*.png"))
    assert leakage_pngs, "the attack stage wrote no reconstruction grid"
    # grids + training curves + throughput bars + stage times + the frontier
    assert page.count('src="data:image/png;base64,') >= len(leakage_pngs) + 4
    assert 'id="cost-table"' in page and 'id="frontier-table"' in page
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
    layout = subprocess.run(
        [*flags, "--window-size=1280,2000", "--dump-dom", url + "#check-layout"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    body = re.search(r"<body[^>]*>", layout).group(0)
    assert re.search(r'data-viewport-width="(\d+)"', body).group(1) in ("1280", "1265")  # with or without a scrollbar
    assert int(re.search(r'data-headers-total="(\d+)"', body).group(1)) >= 20
    assert 'data-headers-offscreen=""' in body  # every column header (key columns included) is on screen at 1280 px
    assert 'data-sections-scrolling=""' in body  # no table wider than its section
    screenshot = tmp_path / "page.png"
    subprocess.run(
        [*flags, "--window-size=1200,2000", f"--screenshot={screenshot}", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    from PIL import Image

    pixels = np.asarray(Image.open(screenshot).convert("L"))
    assert pixels.std() > 10  # text, tables and images, not a blank page


def _cache_files(out) -> dict[str, bytes]:
    """Every file of every finished stage folder, by path relative to ``out/cache``."""
    cache = out / "cache"
    return {str(path.relative_to(cache)): path.read_bytes() for path in sorted(cache.glob("*/**/*")) if path.is_file()}


def test_cli_rerun_resumes_from_the_cache(smoke, capsys):
    """A re-run loads every cacheable stage, builds no new folder, and publishes the same bytes."""
    out = smoke.index_html.parent
    cache_before = _cache_files(out)
    leakage_before = (out / "leakage.json").read_bytes()
    assert main(["study", "--profile", "smoke", "--out", str(out), "--seed", str(SEED), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"report: {smoke.index_html.resolve()}" in printed
    assert "plaintext" in printed and "wall time" in printed
    again = json.loads(smoke.results_json.read_text())
    assert set(again["cached_stages"]) == CACHED_STAGES
    first = smoke.results["stages"]
    for name in CACHED_STAGES:  # the re-run shows what computing each stage took the first time
        assert again["stages"][name]["cached"] and again["stages"][name]["computed"]["seconds"] > 0
        assert again["stages"][name]["computed"]["seconds"] <= first[name]["seconds"]
    assert "reused from the cache" in printed
    assert set(again["victim"]["cached_stages"]) == CACHED_STAGES - {"leakage", "transfer_features"}
    assert _cache_files(out) == cache_before  # no stage folder was rebuilt or added
    assert (out / "leakage.json").read_bytes() == leakage_before
    assert again["leakage"] == json.loads(leakage_before)
    command = again["environment"]["command"]
    assert command.startswith("shufflebits study --profile smoke")
    assert options.study_config(build_parser().parse_args(shlex.split(command)[1:])) == CONFIG


def test_attack_command_is_the_study_up_to_the_leakage_stage(smoke, tmp_path, capsys):
    """Same stages, same cache: on the study's folder everything up to leakage comes from the cache."""
    out = smoke.index_html.parent
    leakage_before = (out / "leakage.json").read_bytes()
    cache_before = _cache_files(out)
    assert main(["attack", "--profile", "smoke", "--out", str(out), "--seed", str(SEED), "--no-progress"]) == 0
    assert "| plaintext |" in capsys.readouterr().out
    assert _cache_files(out) == cache_before
    assert (out / "leakage.json").read_bytes() == leakage_before


def test_same_seed_repeats_features_and_the_whole_leakage_matrix_on_other_threads(smoke, tmp_path):
    """World, training and extraction again from nothing, on two torch threads instead of one; then every row.

    Keys and per-vector nonces of the experiment derive from the seed (``hazmat``), so every per-vector
    cipher's rows repeat, to the last bit of every figure, whatever the thread count of the caller.
    """
    from shufflebits.attacks.leakage import leakage_matrix
    from shufflebits.attacks.leakage_files import write_leakage

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with prepare_victim(CONFIG, smoke.index_html.parent) as first, prepare_victim(CONFIG, tmp_path) as again:
            assert again.cached == []
            for name in ("attacker", "user_query", "user_gallery"):
                assert np.array_equal(getattr(first, name).features, getattr(again, name).features)
            result = leakage_matrix(
                again.attacker,
                again.user_query,
                again.user_gallery,
                again.embed,
                profile=PROFILES["smoke"].attacks,
                seed=SEED,
                progress=False,
                transfer=prepare_transfer(CONFIG, tmp_path),
            )
    finally:
        torch.set_num_threads(before)
    json_path, _ = write_leakage(result, tmp_path)

    fresh_keys = set(cipher_names(homomorphic=True))  # TenSEAL cannot seed a key pair: ckks rows vary a little

    def seeded(rows):
        return [row for row in rows if row["cipher"] not in fresh_keys]

    assert _same(seeded(json.loads(json_path.read_text())), seeded(smoke.results["leakage"]))
    assert len(smoke.results["leakage"]) == len(result.rows)


def test_http_black_box_gives_the_in_process_features(smoke):
    out = smoke.index_html.parent
    with prepare_victim(CONFIG, out) as local:
        with prepare_victim(dataclasses.replace(CONFIG, via_http=True), out) as remote:
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
    config = StudyConfig.from_profile(
        "smoke", weights=weights, dataset="market1501", root=root, attributes=attributes, progress=False
    )
    with prepare_victim(config, tmp_path) as victim:
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
        (["--dataset", "market1501", "--root", "/tmp"], "give it with --attributes"),
        (["--victim", "onnx:/tmp", "--weights", "/tmp"], "drop --weights"),
        (["--device", "tpu"], "unknown device"),
    ],
)
@pytest.mark.parametrize("command", ["study", "attack"])
def test_bad_options_fail_at_once_with_one_line(tmp_path, capsys, command, args, message):
    assert main([command, "--profile", "smoke", "--out", str(tmp_path / "out"), *args]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and "\n" not in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"victim": "onnx:/nonexistent/model.onnx"}, "ONNX file /nonexistent/model.onnx does not exist"),
        ({"weights": "/nonexistent/w.pth"}, "weights file /nonexistent/w.pth does not exist"),
        ({"dataset": "market1501"}, "dataset 'market1501' needs root= (the dataset folder)"),
        ({"root": "/tmp"}, "root= and attributes= need dataset= (market1501 or dukemtmc)"),
        ({"dataset": "cuhk03", "root": "/tmp"}, "unknown dataset 'cuhk03'"),
        ({"dataset": "market1501", "root": "/nonexistent"}, "dataset folder /nonexistent does not exist"),
        ({"dataset": "market1501", "root": "/tmp"}, "give it with attributes="),
        ({"victim": "onnx:/tmp", "weights": "/tmp"}, "an ONNX victim carries its weights; drop weights="),
        ({"seed": "3"}, "seed= must be an integer"),
    ],
)
def test_config_validation_names_parameters_on_one_line(options, message, tmp_path):
    config = StudyConfig.from_profile("smoke", **options)
    with pytest.raises(ConfigError) as refused:
        config.validate()
    text = str(refused.value)
    assert message in text and "\n" not in text and "--" not in text
    with pytest.raises(ConfigError):
        prepare_victim(config, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_config_is_frozen_all_the_way_down():
    config = StudyConfig.from_profile("smoke")
    for owner, name in [
        (config, "seed"),
        (config.profile, "epochs"),
        (config.profile.attacks, "hidden"),
        (config.victim, "model"),
        (config.data, "root"),
    ]:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(owner, name, getattr(owner, name))
    assert config.validate() is config
    assert config.victim.model == config.profile.victim_model and config.victim.trained_here
    with pytest.raises(TypeError, match="StudyConfig"):
        run_study("smoke", "unused")


BUILDS = itertools.count()


def _toy_stage(name: str, needs=(), params=(), fail: bool = False) -> Stage:
    """A cached stage whose output numbers its build: equal bytes prove it was loaded, not rebuilt."""

    def run(context):
        if fail:
            raise RuntimeError(f"{name} broke\nsecond line")
        (context.folder / "out.bin").write_text(f"{name} build {next(BUILDS)}")

    return Stage(
        name, run=run, needs=needs, params=params, load=lambda context: (context.folder / "out.bin").read_bytes()
    )


TOY_GRAPH = [
    _toy_stage("world", params=("seeds.user_world",)),
    _toy_stage("train", needs=("world",), params=("profile.epochs",)),
    _toy_stage("attack", needs=("train",), params=("profile.attacks",)),
    _toy_stage("bench", params=("profile.bench_mib",)),
]


def test_runner_reuses_stages_and_reruns_only_what_a_changed_param_feeds(tmp_path):
    first = StageRunner(TOY_GRAPH, CONFIG, tmp_path)
    built = dict(first.run())
    assert first.cached == []
    again = StageRunner(TOY_GRAPH, CONFIG, tmp_path)
    assert again.run() == built and again.cached == ["world", "train", "attack", "bench"]

    longer = dataclasses.replace(CONFIG, profile=dataclasses.replace(CONFIG.profile, epochs=CONFIG.profile.epochs + 1))
    changed = StageRunner(TOY_GRAPH, longer, tmp_path)
    values = changed.run()
    assert changed.cached == ["world", "bench"]
    assert values["world"] == built["world"] and values["bench"] == built["bench"]
    assert values["train"] != built["train"] and values["attack"] != built["attack"]
    assert changed.reasons == {"train": ["params.profile.epochs"], "attack": ["needs.train"]}
    # an option no stage declares (progress) changes no key
    quiet = StageRunner(TOY_GRAPH, dataclasses.replace(CONFIG, progress=True), tmp_path)
    assert quiet.run() == built and len(quiet.cached) == 4


def test_reused_stage_keeps_the_timing_of_the_run_that_computed_it(tmp_path, capsys):
    def slow(context):
        time.sleep(0.3)
        (context.folder / "out.bin").write_text("slow")

    graph = [Stage("slow", run=slow, load=lambda c: (c.folder / "out.bin").read_text(), description="the slow step")]
    logged = dataclasses.replace(CONFIG, progress=True)
    first = StageRunner(graph, logged, tmp_path)
    first.run()
    computed = json.loads(next((tmp_path / "cache").glob("slow-*/timing.json")).read_text())
    assert computed["seconds"] >= 0.3 and {"load_1min", "cpu_count"} <= set(computed["load"])
    assert first.records["slow"]["cached"] is False and first.records["slow"]["seconds"] >= computed["seconds"]
    assert "the slow step ..." in capsys.readouterr().err
    again = StageRunner(graph, logged, tmp_path)
    again.run()
    record = again.records["slow"]
    assert record["cached"] is True and record["computed"] == computed and record["seconds"] < 0.3
    log = capsys.readouterr().err
    assert "reused: the slow step (cache/slow-" in log and "the slow step ..." not in log


def test_runner_skips_exactly_the_dependents_of_a_failed_stage(tmp_path):
    graph = [
        _toy_stage("world"),
        _toy_stage("train", needs=("world",), fail=True),
        _toy_stage("attack", needs=("train",)),
        _toy_stage("report", needs=("attack", "world")),
        _toy_stage("reid", needs=("world",)),
        _toy_stage("bench"),
    ]
    runner = StageRunner(graph, CONFIG, tmp_path, keep_going=True)
    values = runner.run()
    assert runner.failures == {
        "train": "RuntimeError: train broke",
        "attack": "skipped: needs train",
        "report": "skipped: needs attack",
    }
    assert set(values) == {"world", "reid", "bench"}
    assert "second line" in (tmp_path / "logs" / "train.log").read_text()
    assert not list((tmp_path / "cache").glob(".*.tmp")) and not list((tmp_path / "cache").glob("train-*"))
    with pytest.raises(RuntimeError, match="train broke"):
        StageRunner(graph, CONFIG, tmp_path / "strict").run(targets=("attack",))
    with pytest.raises(ValueError, match="not declared before it"):
        StageRunner(graph[1:], CONFIG, tmp_path)


def test_profiles_fit_their_purpose():
    quick, default, paper = (get_profile(name) for name in ("quick", "default", "paper"))
    assert paper.image_size == (256, 128) and paper.attacks.recon_variants == ("autoencoder", "gan", "consistency")
    assert quick.victim_identities < default.victim_identities < paper.victim_identities
    assert quick.epochs <= default.epochs <= paper.epochs
    assert quick.user_identities // 2 >= 500 and default.user_identities // 2 >= 1000  # attacker identities
    assert quick.victim_pretrained and default.victim_pretrained and paper.victim_pretrained  # zoo victims
    assert min(p.victim_images_per_identity for p in (quick, default, paper)) >= 4  # P x K batches with K = 4
    with pytest.raises(ShuffleBitsError, match="unknown study profile"):
        get_profile("huge")
