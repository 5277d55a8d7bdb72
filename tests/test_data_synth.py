"""The synthetic pedestrian world: layout, determinism, disjoint worlds, attribute round trip, CLI."""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter

import numpy as np
import pytest

from shufflebits.cli import main
from shufflebits.data import SCHEMAS, generate_world, load_attributes, load_market1501
from shufflebits.data.synth import make_person, make_world, render_distractor, render_person
from shufflebits.data.transforms import read_image
from shufflebits.errors import ShuffleBitsError

SMALL = dict(identities=8, images_per_identity=6, cameras=4, progress=False)


def _digest(root) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "world"
    return generate_world(root, **SMALL)


def test_market_layout_and_split(world):
    assert world.name == "market1501"
    assert {r.pid for r in world.train} == set(range(1, 5))
    test_pids = set(range(5, 9))
    assert {r.pid for r in world.query} == test_pids == {r.pid for r in world.gallery}
    assert len(world.train) + len(world.query) + len(world.gallery) == 8 * 6
    for pid in test_pids:
        query_cams = [r.camid for r in world.query if r.pid == pid]
        gallery_cams = [r.camid for r in world.gallery if r.pid == pid]
        assert len(query_cams) == len(set(query_cams)) >= 1  # at most one query per camera
        kept = set(gallery_cams) - set(query_cams)
        assert len(kept) == 1  # one camera keeps all its images in the gallery: every query has a match
        assert gallery_cams.count(kept.pop()) == max(Counter(query_cams + gallery_cams).values())
    assert all(0 <= r.camid < 4 for r in world.train + world.query + world.gallery)
    image = read_image(world.train[0].path)
    assert image.size == (64, 128)


def test_attributes_round_trip_through_the_mat_file(world):
    tables = load_attributes(world.root / "market_attribute.mat", "market")
    assert set(tables["train"]) == set(range(1, 5)) and set(tables["test"]) == set(range(5, 9))
    world_seed, season = 0, make_world(0, (128, 64), 4).season
    for record in world.train + world.query:
        truth = make_person(world_seed, record.pid, season)
        for name in SCHEMAS["market"].plain:
            assert record.attributes[name] == truth.attributes[name]
        for name in ("up_colour", "down_colour"):
            assert record.attributes[name] in (truth.attributes[name], -1)
    assert world.attribute_names == SCHEMAS["market"].names
    for record in world.gallery:  # every row of the label matrix is the person's truth, colours masked
        person = make_person(world_seed, record.pid, season)
        truth = dict(person.attributes)
        if not person.label_colours:
            truth["up_colour"] = truth["down_colour"] = -1
        assert world.labels([record])[0].tolist() == [truth[name] for name in world.attribute_names]


def test_same_seed_same_bytes_other_seed_other_world(tmp_path, world):
    again = generate_world(tmp_path / "again", **SMALL)
    assert _digest(again.root) == _digest(world.root)
    other = generate_world(tmp_path / "other", world_seed=1, **SMALL)
    first, second = _digest(world.root), _digest(other.root)
    assert not set(first.values()) & set(second.values())


# sha256 over (relative path, sha256 of the file) of every file of FROZEN_WORLD, computed with the
# single-module synth.py before it became a package. A change means other images under the same seed
# (or another Pillow / numpy build encoding them): the study's leakage values would move too.
FROZEN_WORLD = dict(identities=4, images_per_identity=5, cameras=3, distractors=3, world_seed=5, progress=False)
FROZEN_WORLD_SHA256 = "d72801ffb3b8421ba2874bbaa7a912e309c1b337aaff9150722d90d73d359f7f"
# sha256 of the raw uint8 pixels and camera ids of render_person (60 people, 6 images, 64x32, world 11)
# and render_distractor (10): every view, garment pattern and bag type, before JPEG.
FROZEN_PIXELS_SHA256 = "19093e26ef89c0a85462c7925b77def60710d35e13e1d447dc59560749e5ed77"


def test_a_small_world_is_byte_identical_to_the_frozen_digest(tmp_path):
    root = generate_world(tmp_path / "frozen", **FROZEN_WORLD).root
    digest = hashlib.sha256()
    for name, file_digest in _digest(root).items():
        digest.update(name.encode() + b"\0" + bytes.fromhex(file_digest))
    assert len(_digest(root)) == 4 * 5 + 3 + 1  # images, distractors, market_attribute.mat
    assert digest.hexdigest() == FROZEN_WORLD_SHA256


def test_rendered_pixels_match_the_frozen_digest():
    world = make_world(11, (64, 32), 5)
    digest = hashlib.sha256()
    for pid in range(1, 61):
        images, cams = render_person(world, make_person(11, pid, world.season), 6)
        digest.update(images.tobytes())
        digest.update(bytes(cams))
    for index in range(10):
        image, cam = render_distractor(world, index)
        digest.update(image.tobytes())
        digest.update(bytes([cam]))
    assert digest.hexdigest() == FROZEN_PIXELS_SHA256


def test_parallel_workers_write_the_same_bytes(tmp_path, world):
    parallel = generate_world(tmp_path / "parallel", workers=2, **SMALL)
    assert _digest(parallel.root) == _digest(world.root)


def test_world_seeds_give_disjoint_people_and_cameras():
    a, b = make_world(0, (128, 64), 3), make_world(1, (128, 64), 3)
    scenes_a = np.stack([np.asarray(scene) for c in a.cameras for scene in c.backgrounds])
    scenes_b = np.stack([np.asarray(scene) for c in b.cameras for scene in c.backgrounds])
    assert not np.array_equal(scenes_a, scenes_b)
    mean_a, mean_b = scenes_a.mean(axis=(0, 1, 2)), scenes_b.mean(axis=(0, 1, 2))
    assert np.abs(mean_a - mean_b).max() > 2  # a domain shift in the scenery
    looks_a = {(p.up_rgb, p.down_rgb, p.skin) for p in (make_person(0, pid, a.season) for pid in range(1, 60))}
    looks_b = {(p.up_rgb, p.down_rgb, p.skin) for p in (make_person(1, pid, b.season) for pid in range(1, 60))}
    assert not looks_a & looks_b


def test_people_are_varied_and_some_differ_in_one_attribute():
    season = make_world(0, (128, 64), 2).season
    people = [make_person(0, pid, season) for pid in range(1, 301)]
    for name, classes in SCHEMAS["market"].num_classes.items():
        counts = Counter(p.attributes[name] for p in people)
        assert len(counts) >= min(classes, 3), name
        assert max(counts.values()) < 0.99 * len(people), name
    one_apart = sum(
        sum(p.attributes[k] != q.attributes[k] for k in p.attributes) == 1 and p.up_rgb == q.up_rgb
        for p, q in zip(people[::2], people[1::2])
    )
    assert one_apart >= 10
    shared_colours = Counter((p.attributes["up_colour"], p.attributes["down_colour"]) for p in people)
    assert shared_colours.most_common(1)[0][1] >= 10


def test_images_of_one_person_vary(tmp_path):
    world = make_world(3, (128, 64), 6)
    person = make_person(3, 7, world.season)
    images, cams = render_person(world, person, 12)
    assert images.shape == (12, 128, 64, 3) and images.dtype == np.uint8
    assert len(set(cams)) >= 2
    flat = images.reshape(12, -1).astype(np.float32)
    assert min(np.abs(flat[i] - flat[j]).mean() for i in range(12) for j in range(i)) > 1.0
    centre = images[:, 40:90, 24:40].astype(np.float32).mean(axis=(0, 1, 2))
    border = images[:, :, :4].astype(np.float32).mean(axis=(0, 1, 2))
    assert np.abs(centre - border).max() > 3  # a person stands out from the background


def test_distractors_are_unlabelled_gallery_images(tmp_path):
    dataset = generate_world(tmp_path / "d", identities=4, images_per_identity=4, distractors=5, progress=False)
    distractors = [r for r in dataset.gallery if r.pid == 0]
    assert len(distractors) == 5 and not any(r.pid == 0 for r in dataset.train + dataset.query)
    assert all(set(r.attributes.values()) == {-1} for r in distractors)
    assert 0 not in load_attributes(dataset.root / "market_attribute.mat")["test"]


def test_large_size_option(tmp_path):
    dataset = generate_world(tmp_path / "big", identities=2, images_per_identity=4, size=(256, 128), progress=False)
    assert read_image(dataset.train[0].path).size == (128, 256)


def test_refuses_non_empty_folder_and_overwrites_on_request(tmp_path):
    target = tmp_path / "world"
    target.mkdir()
    (target / "keep.txt").write_text("precious")
    with pytest.raises(ShuffleBitsError, match="not empty"):
        generate_world(target, identities=2, images_per_identity=4, progress=False)
    assert (target / "keep.txt").read_text() == "precious"
    dataset = generate_world(target, identities=2, images_per_identity=4, progress=False, overwrite=True)
    assert not (target / "keep.txt").exists() and len(dataset.train) == 4
    assert [p.name for p in tmp_path.iterdir()] == ["world"]  # no temp folders left behind


def test_failed_generation_leaves_nothing(tmp_path, monkeypatch):
    import shufflebits.data.synth.world as writer

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(writer, "save_attributes", explode)
    with pytest.raises(RuntimeError):
        generate_world(tmp_path / "world", identities=2, images_per_identity=4, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(identities=1), "identities"),
        (dict(images_per_identity=1), "images_per_identity"),
        (dict(images_per_identity=(5, 3)), "images_per_identity"),
        (dict(images_per_identity="many"), "images_per_identity"),
        (dict(cameras=10), "cameras"),
        (dict(distractors=-1), "distractors"),
        (dict(world_seed=-3), "world_seed"),
        (dict(workers=0), "workers"),
        (dict(size=(8, 64)), "size"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ShuffleBitsError, match=message):
        generate_world(tmp_path / "w", progress=False, **{"identities": 2, "images_per_identity": 4, **kwargs})


def test_cli_synth(tmp_path, capsys):
    out = tmp_path / "cli"
    arguments = ["--identities", "4", "--images-per-identity", "4", "--world-seed", "2", "--no-progress"]
    code = main(["synth", "--out", str(out), *arguments])
    assert code == 0
    line = capsys.readouterr().out.strip()
    assert "4 identities" in line and "16 images" in line and "images/s" in line and "\n" not in line
    assert len(load_market1501(out).train) == 8
    assert main(["synth", "--out", str(out), "--identities", "4", "--no-progress"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path / "x"), "--size", "12x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("shufflebits: error: size") and "\n" not in err


def test_generated_world_folder_follows_the_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        generate_world(tmp_path / "w", identities=4, images_per_identity=4, progress=False)
    finally:
        os.umask(old)
    assert (tmp_path / "w").stat().st_mode & 0o777 == 0o755


def test_image_counts_vary_per_identity_and_two_images_still_make_a_query(tmp_path):
    dataset = generate_world(tmp_path / "w", identities=40, images_per_identity=(2, 10), cameras=4, progress=False)
    records = dataset.train + dataset.query + dataset.gallery
    counts = Counter(r.pid for r in records)
    assert min(counts.values()) >= 2 and max(counts.values()) <= 10 and len(set(counts.values())) >= 4
    assert all(len({r.camid for r in records if r.pid == pid}) >= 2 for pid in counts)
    for query in dataset.query:  # every query has a gallery match in another camera
        assert any(g.pid == query.pid and g.camid != query.camid for g in dataset.gallery)
    assert {r.pid for r in dataset.query} == set(range(21, 41))  # even identities with only two images


@pytest.mark.parametrize("accessory", ["hat", "backpack", "bag", "handbag"])
def test_accessories_are_visible_at_128x64(accessory):
    """An accessory changes well over a hundred pixels of a 128x64 crop in every view (a few did before)."""
    world = make_world(2, (128, 64), 6)
    areas = []
    for pid in range(1, 21):
        person = make_person(2, pid, world.season)
        with_it, without = (
            dataclasses.replace(person, attributes={**person.attributes, accessory: value}) for value in (1, 0)
        )
        a, _ = render_person(world, with_it, 6)
        b, _ = render_person(world, without, 6)  # the same stream: the same poses, cameras and noise
        changed = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=-1) > 40
        areas += changed.reshape(len(a), -1).sum(axis=1).tolist()
    assert np.percentile(areas, 5) >= 100, accessory


def test_priors_are_the_market_attribute_file_counts():
    from conftest import shared_file
    from shufflebits.data.synth.people import MARKET_PRIORS, count_priors

    tables = load_attributes(shared_file("data/attributes/market_attribute.mat"), "market")
    counted = count_priors([*tables["train"].values(), *tables["test"].values()])
    assert set(counted) == set(MARKET_PRIORS)
    for name, prior in MARKET_PRIORS.items():
        np.testing.assert_allclose(prior, counted[name], atol=5e-4, err_msg=name)


@pytest.mark.parametrize("profile_name, attackers", [("quick", 500), ("default", 1000)])
def test_every_attribute_class_is_held_by_ten_attacker_identities(profile_name, attackers):
    from shufflebits.study.config import study_seeds
    from shufflebits.study.profiles import get_profile

    profile = get_profile(profile_name)
    assert profile.user_identities // 2 >= attackers  # the attacker split is the first half of the user world
    seed = study_seeds(0)["user_world"]
    season = make_world(seed, profile.image_size).season
    people = [make_person(seed, pid, season) for pid in range(1, profile.user_identities // 2 + 1)]
    for name, classes in SCHEMAS["market"].num_classes.items():
        labelled = [p for p in people if p.label_colours or not name.endswith("_colour")]
        counts = Counter(p.attributes[name] for p in labelled)
        assert min(counts.get(c, 0) for c in range(classes)) >= 10, (name, counts)
