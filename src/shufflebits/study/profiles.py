"""Study profiles: how big the worlds are, which victim, how hard the attacks try.

One profile fixes every size so that a run is reproducible from its name and a
seed. ``quick`` and ``default`` attack the zoo victim trained at 128x64 and are
sized for this project's 2-core CPU budget (3 and 10 minutes in total);
``paper`` follows the paper's image size (256x128) and attack configuration and
may take hours; ``smoke`` exists for the tests only and trains its own victim.
The victim-training sizes apply with ``--train-victim``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..attacks.types import AttackProfile, CkksSample
from ..errors import ShuffleBitsError


@dataclass(frozen=True)
class Profile:
    """Every size a study run depends on (hashed into the cache keys)."""

    name: str
    # A generated world puts half its identities in the train split, half in query/gallery.
    victim_identities: int  # victim-training world (the MSMT17 stand-in); its train split trains the victim
    user_identities: int  # attacker/user world (the Market-1501 stand-in): train = attacker, query/gallery = users
    images_per_identity: int | tuple[int, int]  # of the attacker/user world: a count or a range per identity
    victim_images_per_identity: int | tuple[int, int]  # of the victim world (trained here): K = 4 views per batch
    image_size: tuple[int, int]  # (H, W) of the generated crops and of the victim's input
    victim_model: str  # registry name of the victim model
    victim_pretrained: str | None  # the zoo victim used unless told otherwise; None: train one (as --train-victim)
    epochs: int
    batch_size: int  # P x K with K = 4 (``engine.train``)
    lr: float  # Adam's peak learning rate (after the warm-up)
    max_minutes: float  # safety cap on victim training; generous, since a cut run is not reproducible
    attacks: AttackProfile  # how hard the leakage matrix's attacks try
    recon_size: tuple[int, int]  # (H, W) of the image copies the reconstruction attack learns
    bench_mib: int  # MiB of float32 features per cipher in the throughput benchmark
    cost_gallery: int  # templates in the cost table's 1:N search (``ciphers.cost``; 10,000 in ``bench --cost``)
    cost_repeats: int  # timed runs behind each single-vector median of the cost table

    def as_dict(self) -> dict:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        victim_identities=12,
        user_identities=12,
        images_per_identity=4,
        victim_images_per_identity=4,
        image_size=(64, 32),
        victim_model="osnet_x0_25",
        victim_pretrained=None,
        epochs=1,
        batch_size=64,
        lr=3e-3,
        max_minutes=5.0,
        attacks=AttackProfile(
            mlp_epochs=8,
            paper_epochs=4,
            hidden=64,
            bits_hidden=16,
            recon_epochs=2,
            recon_width=16,
            recon_variants=("autoencoder",),
            surrogate_epochs=1,
            permutations=50,
            known_pairs=(1, 4, 16),
        ),
        recon_size=(32, 16),
        bench_mib=1,
        cost_gallery=256,
        cost_repeats=3,
    ),
    # quick and default are sized by measurement on the 2-core CPU (one torch thread):
    # an OSNet-x0.25 step of 64 images takes about 0.2 s at 64x32 and 0.5 s at 128x64, so
    # the victim's budget is a number of steps; the attacker's identities decide whether
    # attribute inference rises above chance, the number of images much less.
    "quick": Profile(
        name="quick",
        victim_identities=300,  # with --train-victim: 150 training identities x 8 views
        user_identities=1000,  # 500 attacker identities (every attribute class held by >= 10), 500 users
        images_per_identity=(2, 6),
        victim_images_per_identity=8,
        image_size=(128, 64),
        victim_model="osnet_x0_25",
        victim_pretrained="osnet_x0_25-synth-128x64",
        epochs=16,
        batch_size=64,
        lr=3e-3,
        max_minutes=10.0,
        attacks=AttackProfile(
            mlp_epochs=20,
            paper_epochs=100,
            hidden=256,
            bits_hidden=16,
            recon_epochs=8,
            recon_width=32,
            recon_variants=("autoencoder",),
            surrogate_epochs=3,
            permutations=200,
            known_pairs=(1, 4, 16, 64),
            recon_queries=200,  # of about 970 users: each goes through the victim and the 256x128 second model
            ckks=CkksSample(
                queries=64, wrong_key_queries=32, attacker_pool=256, attribute_attacker=160, link_gallery=96
            ),
        ),
        recon_size=(32, 16),
        bench_mib=8,
        cost_gallery=2_000,
        cost_repeats=5,
    ),
    "default": Profile(
        name="default",
        victim_identities=400,  # with --train-victim: 200 training identities x 8 views
        user_identities=2000,  # 1000 attacker identities, 1000 user identities
        images_per_identity=(2, 10),
        victim_images_per_identity=8,
        image_size=(128, 64),
        victim_model="osnet_x0_25",
        victim_pretrained="osnet_x0_25-synth-128x64",
        epochs=20,
        batch_size=64,
        lr=3e-3,
        max_minutes=30.0,
        attacks=AttackProfile(
            mlp_epochs=40,
            paper_epochs=100,
            hidden=256,
            bits_hidden=32,
            recon_epochs=10,
            recon_width=48,
            recon_variants=("autoencoder",),
            surrogate_epochs=3,
            permutations=500,
            known_pairs=(1, 2, 4, 8, 16, 32, 64),
        ),
        recon_size=(64, 32),
        bench_mib=64,
        cost_gallery=10_000,
        cost_repeats=20,
    ),
    "paper": Profile(
        name="paper",
        victim_identities=2082,  # 1041 training identities, as MSMT17
        user_identities=1501,  # 751 attacker (train) + 750 user identities, as Market-1501
        images_per_identity=(2, 10),
        victim_images_per_identity=16,
        image_size=(256, 128),
        victim_model="osnet_x0_25",
        victim_pretrained="osnet_x0_25-synth-256x128",
        epochs=60,
        batch_size=64,
        lr=3e-3,
        max_minutes=24 * 60.0,
        attacks=AttackProfile(
            mlp_epochs=100,
            paper_epochs=100,
            hidden=512,
            bits_hidden=512,
            recon_epochs=100,
            recon_width=64,
            recon_variants=("autoencoder", "gan", "consistency"),  # consistency: through the attacker's victim copy
            surrogate_epochs=20,
            permutations=1000,
            known_pairs=(1, 2, 4, 8, 16, 32, 64, 256, 1024),
        ),
        recon_size=(128, 64),
        bench_mib=64,
        cost_gallery=10_000,
        cost_repeats=20,
    ),
}

PUBLIC_PROFILES = ("quick", "default", "paper")


def get_profile(profile: str | Profile) -> Profile:
    """The named profile (a ``Profile`` passes through unchanged)."""
    if isinstance(profile, Profile):
        return profile
    if profile not in PROFILES:
        raise ShuffleBitsError(f"unknown study profile {profile!r}; choose one of {', '.join(PUBLIC_PROFILES)}")
    return PROFILES[profile]
