"""The ciphertext-only curve at 1,000, 10,000 and 100,000 users' ciphertexts: more than a study's users hold.

    PYTHONPATH=src python scripts/ciphertext_only_curve.py --out ciphertext-only.json [--profile default] [--seed 0]

A study's ``ciphertext_only_cosine`` curve stops at its users' ciphertexts (a few
thousand). Here the population is built from the same pieces: the profile's user
world (world seed ``study_seeds(seed)["user_world"]``, its image size and images per
identity), every image rendered in memory as ``generate_world`` draws it,
JPEG-encoded at its quality and given as bytes to an in-process black box around
the profile's zoo victim (one torch thread, ``channels_last`` convolutions). The
attacker: identities 1 to ``user_identities / 2``, the study's attacker split. The
users: the following identities, first the study's own users, then more people of
the same world (the generator's identities past the study's, which no study
renders), until there are as many images as the largest count, taken in a seeded
random order.

For each cipher with a ciphertext-only attack (``protection.ciphertext_only_attack``),
under the leakage matrix's experiment key for ``--seed``, ``protection.alignment_curve``
(the study's own code) fits on the first n users' ciphertexts and the attacker's
plaintext, and scores on the first ``--evaluate`` users (inside every fit, as the
study's queries): the mean cosine of their inverted features to the truth. Chance:
``protection.mean_guess_cosine``, the attacker's mean feature as everyone's guess.
Prints a table, writes the JSON atomically to ``--out``.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from shufflebits.atomic import atomic_write_text
from shufflebits.attacks.protection import (
    CIPHERTEXT_ONLY,
    alignment_curve,
    ciphertext_only_attack,
    mean_guess_cosine,
)
from shufflebits.ciphers.catalogue import cipher_names, spec
from shufflebits.ciphers.hazmat import experiment_cipher
from shufflebits.ciphers.matching import match_view
from shufflebits.data.synth import make_person, make_world, render_person
from shufflebits.data.synth.world import JPEG_QUALITY, image_counts, images_of
from shufflebits.errors import ShuffleBitsError
from shufflebits.models import build_extractor
from shufflebits.models.zoo import is_trained
from shufflebits.runtime import blas_threads, torch_threads
from shufflebits.service import InProcessBlackBox
from shufflebits.study.config import study_seeds
from shufflebits.study.load import load_sample, load_text
from shufflebits.study.numbers import figure
from shufflebits.study.profiles import get_profile

COUNTS = (1000, 10_000, 100_000)
EVALUATED = 1000  # users whose inverted features are scored (the study scores its few hundred queries)
EMBED_BATCH = 256  # images rendered before each black-box call


def _jpeg(image: np.ndarray) -> bytes:
    """The image as ``generate_world`` stores it."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def embed_identities(black_box, world, pids, counts: tuple[int, int], limit: int, bar) -> tuple[np.ndarray, list]:
    """Features of the first ``limit`` images of identities ``pids``, in order, and the pids drawn."""
    parts, pending, used = [], [], []

    def flush() -> None:
        batch = pending[: limit - sum(len(part) for part in parts)]
        parts.append(black_box.features(batch))
        bar.update(len(batch))
        pending.clear()

    for pid in pids:
        if sum(len(part) for part in parts) + len(pending) >= limit:
            break
        images, _ = render_person(world, make_person(world.seed, pid, world.season), images_of(world.seed, pid, counts))
        pending.extend(_jpeg(image) for image in images)
        used.append(pid)
        if len(pending) >= EMBED_BATCH:
            flush()
    if pending:
        flush()
    return np.concatenate(parts), used


def population(profile, seed: int, attacker_identities: int, users_wanted: int, progress: bool) -> dict:
    """The attacker's plaintext features and ``users_wanted`` users' features (seeded order), with what they are."""
    if profile.victim_pretrained is None or not is_trained(profile.victim_pretrained):
        raise ShuffleBitsError(f"profile {profile.name} has no installed zoo victim; choose quick, default or paper")
    world_seed = study_seeds(seed)["user_world"]
    world = make_world(world_seed, profile.image_size)
    counts = image_counts(profile.images_per_identity)
    extractor = build_extractor(profile.victim_model, pretrained=profile.victim_pretrained, channels_last=True)
    black_box = InProcessBlackBox(extractor)
    attacker_pids = range(1, attacker_identities + 1)
    attacker_images = sum(images_of(world_seed, pid, counts) for pid in attacker_pids)
    started = time.perf_counter()
    with tqdm(total=attacker_images + users_wanted, desc="population", unit="img", disable=not progress) as bar:
        attacker, _ = embed_identities(black_box, world, attacker_pids, counts, attacker_images, bar)
        user_pids = itertools.count(attacker_identities + 1)
        users, user_pids = embed_identities(black_box, world, user_pids, counts, users_wanted, bar)
    order = np.random.default_rng(seed).permutation(len(users))
    low, high = counts
    split = profile.user_identities // 2  # the study's attacker split: identities 1..split; its users: the rest
    attacker_words = "the study's attacker split" if attacker_identities == split else f"the study's: 1-{split}"
    described = (
        f"{len(users):,} users' features: images of identities {user_pids[0]}-{user_pids[-1]} of the user world "
        f"(seed {world_seed}; the study's users are {split + 1}-{profile.user_identities}), "
        f"{profile.image_size[0]}x{profile.image_size[1]}, {low}-{high} images per identity, rendered as "
        f"generate_world draws them, JPEG quality {JPEG_QUALITY}, embedded by zoo victim {profile.victim_pretrained}; "
        f"attacker: {len(attacker):,} features of identities 1-{attacker_identities} ({attacker_words})"
    )
    return {
        "attacker": attacker,
        "users": users[order],
        "record": {
            "description": described,
            "world_seed": world_seed,
            "image_size": list(profile.image_size),
            "images_per_identity": [low, high],
            "victim": profile.victim_pretrained,
            "attacker_identities": [1, attacker_identities],
            "attacker_images": len(attacker),
            "user_identities": [user_pids[0], user_pids[-1]],
            "user_images": len(users),
            "study_user_identities": [split + 1, profile.user_identities],
            "embed_seconds": round(time.perf_counter() - started, 1),
        },
    }


def curve_rows(attacker: np.ndarray, users: np.ndarray, counts: list[int], evaluated: int, seed: int, progress: bool):
    """One row per (cipher with a ciphertext-only attack, count): the study's alignment, its cosine and chance."""
    truth = users[:evaluated]
    chance = mean_guess_cosine(attacker, truth)
    attacks = {name: ciphertext_only_attack(name) for name in cipher_names()}
    attacks = {name: template for name, template in attacks.items() if template is not None}
    rows = []
    with tqdm(total=len(attacks) * len(counts), desc="alignments", disable=not progress) as bar:
        for name, template in attacks.items():
            view, _ = match_view(experiment_cipher(name, seed).encrypt(np.ascontiguousarray(users, dtype=np.float32)))
            for n in counts:
                started = time.perf_counter()
                [(_, cosine)], _ = alignment_curve(template, view, attacker, view[:evaluated], truth, [n])
                rows.append(
                    {
                        "cipher": name,
                        "attack": CIPHERTEXT_ONLY[spec(name).family],
                        "ciphertexts": n,
                        "cosine": cosine,
                        "chance": chance,
                        "evaluated": evaluated,
                        "seconds": round(time.perf_counter() - started, 2),
                    }
                )
                bar.update(1)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file for the rows and the population's description")
    parser.add_argument("--profile", default="default", help="study profile: its user world and zoo victim")
    parser.add_argument("--seed", type=int, default=0, help="the study's seed: world, keys and the users' order")
    parser.add_argument("--counts", type=int, nargs="+", default=list(COUNTS), help="users' ciphertexts per fit")
    parser.add_argument("--evaluate", type=int, default=EVALUATED, help="users whose inversions are scored")
    parser.add_argument("--attacker-identities", type=int, help="default: the study's attacker split")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        profile = get_profile(args.profile)
    except ShuffleBitsError as error:
        parser.error(str(error))
    if not Path(args.out).parent.is_dir():  # before minutes of work, not after
        parser.error(f"output folder {Path(args.out).parent} does not exist")
    counts = sorted(set(args.counts))
    attacker_identities = args.attacker_identities or profile.user_identities // 2
    if not 2 <= args.evaluate <= counts[0] or attacker_identities < 2:
        parser.error("--evaluate must be between 2 and the smallest count, --attacker-identities at least 2")
    started, sample = time.perf_counter(), load_sample()
    with torch_threads(1), blas_threads(1):
        data = population(profile, args.seed, attacker_identities, counts[-1], not args.no_progress)
        rows = curve_rows(data["attacker"], data["users"], counts, args.evaluate, args.seed, not args.no_progress)
    sample = max(sample, load_sample(), key=lambda s: s["load_1min"])
    result = {
        "profile": profile.name,
        "seed": args.seed,
        "population": data["record"],
        "rows": rows,
        "load": sample,
        "seconds": round(time.perf_counter() - started, 1),
    }
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    print(data["record"]["description"])
    print(f"{'cipher':<14} {'attack':<18} {'ciphertexts':>11} {'cosine':>7} {'chance':>7} {'seconds':>8}")
    for row in rows:
        print(
            f"{row['cipher']:<14} {row['attack']:<18} {figure(row['ciphertexts']):>11} {figure(row['cosine']):>7} "
            f"{figure(row['chance']):>7} {figure(row['seconds'], 1):>8}"
        )
    print(
        f"(cosine of the first {figure(args.evaluate)} users' inverted features to the truth; chance: the attacker's "
        f"mean feature; {figure(result['seconds'], 0)} s under {load_text(sample)}; JSON: {args.out})"
    )


if __name__ == "__main__":
    try:
        main()
    except ShuffleBitsError as error:  # e.g. a profile without an installed zoo victim
        raise SystemExit(f"ciphertext_only_curve.py: {error}") from None
