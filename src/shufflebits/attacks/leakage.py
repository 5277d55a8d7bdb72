"""The leakage matrix: every attack against plaintext and every cipher, each beside its chance level.

Threat model for the cipher rows: the attacker knows the scheme, not the key.
It holds its own labelled images, can query the victim model for plaintext
features (as the paper's attacker does), gets its own images' ciphertexts from
the encrypting black box under the users' key (same-key learning), and has the
users' leaked ciphertexts. Attacks are trained on the attacker's data only;
when several attacks apply, the one reported as best is chosen by its score on
the attacker's validation split, never on the users' data.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from tqdm.auto import tqdm

from ..ciphers.catalogue import cipher_names, spec
from ..ciphers.hazmat import experiment_cipher
from ..errors import ShuffleBitsError
from ..registry import create_attack
from ..runtime import torch_threads
from .attribute import AttributeInference
from .keyrecovery import recover_permutation, score_recovery, true_permutation
from .reconstruction import VARIANTS, Reconstructor
from .reconstruction_cells import Candidate, attacker_split, reconstruction_rows
from .reconstruction_eval import TransferModel, rank1, shuffled_rank1
from .scoring import attribute_scores, permutation_null
from .types import AttackProfile, LabelledFeatures, LeakageResult, LeakageRow
from .views import invariant_view

PER_DIMENSION_KEY = {"fixed": False, "per-dimension": True}  # catalogue permutation -> recover_permutation mode
IMAGE = "image"  # the rows of the raw-pixel probe: no feature vector at all, the image itself
PIXEL_PROBE_SIZE = (32, 16)  # (H, W): enough for colours, sleeves and accessories, small enough for an MLP


def pixels(images: np.ndarray) -> np.ndarray:
    """``(n, 3, h, w)`` images in [0, 1] averaged down to ``PIXEL_PROBE_SIZE``, flattened."""
    import torch
    import torch.nn.functional as F

    small = F.adaptive_avg_pool2d(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)), PIXEL_PROBE_SIZE)
    return small.reshape(len(images), -1).numpy()


def _concat(a: LabelledFeatures, b: LabelledFeatures) -> LabelledFeatures:
    return LabelledFeatures(
        features=np.concatenate([a.features, b.features]),
        labels=np.concatenate([a.labels, b.labels]),
        attribute_names=a.attribute_names,
        num_classes=a.num_classes,
        pids=np.concatenate([a.pids, b.pids]),
        camids=np.concatenate([a.camids, b.camids]),
    )


class _Matrix:
    """Collects rows for one run; one instance per ``leakage_matrix`` call."""

    def __init__(
        self, attacker, query, gallery, embed, profile: AttackProfile, seed, device, progress, transfer=None, copy=None
    ):
        self.attacker, self.query, self.gallery, self.embed = attacker, query, gallery, embed
        self.transfer = transfer
        self.users = _concat(query, gallery)
        self.profile, self.seed, self.device, self.progress = profile, seed, device, progress
        self.rows: list[LeakageRow] = []
        self.grids: dict[tuple[str, str], np.ndarray] = {}
        self.can_reconstruct = attacker.images is not None and query.images is not None
        self.recon_train, self.recon_validation = attacker_split(attacker, seed)
        self.pixel_model: AttributeInference | None = None
        self.image_ceiling: float | None = None
        common = dict(device=device, random_state=seed, progress=progress)
        recon = dict(epochs=profile.recon_epochs, width=profile.recon_width, surrogate_epochs=profile.surrogate_epochs)
        if copy is not None:
            recon["feature_model"] = copy
        self.templates = {
            "attr-mlp": create_attack("attr-mlp", epochs=profile.mlp_epochs, **common),
            "attr-paper": create_attack("attr-paper", epochs=profile.paper_epochs, **common),
            **{f"recon-{v}": create_attack(f"recon-{v}", **recon, **common) for v in VARIANTS},
            "nn-lookup": create_attack("nn-lookup"),
        }

    def attribute_model(self, config: str, view: str | None) -> AttributeInference:
        hidden = self.profile.bits_hidden if view == "bits" else self.profile.hidden
        return clone(self.templates[f"attr-{config}"]).set_params(view=view, hidden=hidden)

    def reconstructor(self, variant: str, view: str | None = None) -> Reconstructor:
        return clone(self.templates[f"recon-{variant}"]).set_params(view=view)

    def fit_reconstruction(self, name: str, view: str | None, X_attacker):
        """A reconstruction attack (``nn-lookup`` or a decoder variant) fitted on the attacker's training identities."""
        model = clone(self.templates["nn-lookup"]) if name == "nn-lookup" else self.reconstructor(name)
        train = self.recon_train
        return model.set_params(view=view).fit(X_attacker[train], self.attacker.images[train])

    def fit_attribute(self, config: str, view: str | None, X_attacker) -> AttributeInference:
        a = self.attacker
        return self.attribute_model(config, view).fit(
            X_attacker, a.labels, groups=a.pids, num_classes=a.num_classes, attribute_names=a.attribute_names
        )

    def add_attribute_rows(
        self, cipher: str, candidates: dict[str, tuple[float, np.ndarray]], users: LabelledFeatures | None = None
    ) -> None:
        """``candidates``: attack -> (validation score, predictions on users); reports the best by validation."""
        users = self.users if users is None else users
        names = users.attribute_names
        scores = {attack: attribute_scores(users.labels, pred, names) for attack, (_, pred) in candidates.items()}
        best = max(candidates, key=lambda attack: candidates[attack][0])
        null = permutation_null(users.labels, candidates[best][1], names, self.profile.permutations, self.seed)
        score = scores[best]
        self.rows.append(
            LeakageRow(
                cipher=cipher,
                attack=best,
                metric="attr_bacc_mean",
                value=score["mean"],
                chance=score["chance_mean"],
                n=score["n"],
                details={
                    **null["mean"],
                    "validation": candidates[best][0],
                    "candidates": {
                        attack: {"value": scores[attack]["mean"], "validation": validation}
                        for attack, (validation, _) in candidates.items()
                    },
                },
            )
        )
        for name, per in score["attributes"].items():
            self.rows.append(
                LeakageRow(
                    cipher=cipher,
                    attack=best,
                    metric="attr_bacc",
                    attribute=name,
                    value=per["bacc"],
                    chance=per["chance"],
                    n=per["n"],
                    details=dict(null[name]),
                )
            )

    def image_attributes(self, images: np.ndarray) -> np.ndarray:
        """The pixel probe's attribute predictions for images (reconstructions, judged as the paper does)."""
        return self.pixel_model.predict(pixels(images))

    def add_reconstruction_rows(self, cipher: str, candidates: dict[str, Candidate], attribute_model) -> None:
        """The validation-chosen reconstruction's rows (``reconstruction_cells``) and every candidate's grid."""
        rows, grids = reconstruction_rows(
            cipher,
            candidates,
            attacker=self.attacker,
            validation_rows=self.recon_validation,
            query=self.query,
            gallery=self.gallery,
            embed=self.embed,
            attribute_model=attribute_model,
            image_attributes=None if self.pixel_model is None else self.image_attributes,
            image_ceiling=self.image_ceiling,
            transfer=self.transfer,
            seed=self.seed,
        )
        self.rows.extend(rows)
        self.grids.update(grids)

    def add_reid_row(self, cipher: str, attack: str, query_features, gallery_features) -> None:
        self.rows.append(
            LeakageRow(
                cipher=cipher,
                attack=attack,
                metric="reid_rank1",
                value=rank1(query_features, gallery_features, self.query, self.gallery),
                chance=shuffled_rank1(query_features, gallery_features, self.query, self.gallery, self.seed),
                n=len(query_features),
            )
        )

    def pixel_probe(self) -> None:
        """The attribute attack on the images themselves, downsampled: what the image alone reveals.

        The ceiling a feature vector is measured against: the same MLP on
        ``PIXEL_PROBE_SIZE`` pixels of the attacker's images, scored on the users'
        query images (the users' images the study keeps).
        """
        a = self.attacker
        X_attacker, X_users = (pixels(images) for images in (a.images, self.query.images))
        model = self.attribute_model("mlp", None).fit(
            X_attacker, a.labels, groups=a.pids, num_classes=a.num_classes, attribute_names=a.attribute_names
        )
        self.add_attribute_rows(IMAGE, {"pixel-probe": (model.validation_score_, model.predict(X_users))}, self.query)
        self.pixel_model = model  # also the attribute classifier applied to reconstructed images
        self.image_ceiling = model.score(X_users, self.query.labels)  # on the users' own images

    def plaintext(self) -> tuple[AttributeInference, dict[str, Reconstructor]]:
        """Plaintext attacks; returns the models that key recovery reuses on decrypted features."""
        a = self.attacker
        models = {f"attr-{config}": self.fit_attribute(config, None, a.features) for config in ("mlp", "paper")}
        self.add_attribute_rows(
            "plaintext", {name: (m.validation_score_, m.predict(self.users.features)) for name, m in models.items()}
        )
        self.add_reid_row("plaintext", "features", self.query.features, self.gallery.features)
        decoders = {}
        if self.can_reconstruct:
            for name in ("nn-lookup", *self.profile.recon_variants):
                decoders[name] = self.fit_reconstruction(name, None, a.features)
            val, Q = a.features[self.recon_validation], self.query.features
            candidates = {_attack_name(name): Candidate(model, val, Q) for name, model in decoders.items()}
            self.add_reconstruction_rows("plaintext", candidates, models["attr-mlp"])
        return models["attr-mlp"], decoders

    def cipher(self, name: str, plain_model: AttributeInference, decoders: dict[str, Reconstructor]) -> None:
        a = self.attacker
        cipher = experiment_cipher(name, self.seed)
        sets = (a, self.query, self.gallery)
        A, Q, G = (cipher.encrypt(np.ascontiguousarray(s.features, dtype=np.float32)).words() for s in sets)
        U = np.concatenate([Q, G])
        candidates = {}
        for attack, view in (("same-key-bits", "bits"), ("same-key-float", "float"), ("invariants", "invariants")):
            model = self.fit_attribute("mlp", view, A)
            candidates[attack] = (model.validation_score_, model.predict(U))
        self.add_reid_row(name, "invariants", invariant_view(Q), invariant_view(G))
        decrypt = None
        permutation = spec(name).permutation
        if permutation in PER_DIMENSION_KEY:
            per_dimension = PER_DIMENSION_KEY[permutation]
            recovered = recover_permutation(np.concatenate([A, U]), a.features, per_dimension=per_dimension)
            truth = true_permutation(cipher, a.features.shape[1])
            result = score_recovery(recovered, truth, self.users.features)
            self.rows.append(
                LeakageRow(
                    cipher=name,
                    attack="key-recovery",
                    metric="key_bits_recovered",
                    value=result["bits_exact"],
                    chance=1.0,
                    n=recovered.n_words,
                    details={"of": 32, **{k: v for k, v in result.items() if k != "bits_exact"}},
                )
            )
            decrypt = recovered.decrypt
            val = plain_model.validation_index_
            own = plain_model.predict(decrypt(A)[val])
            validation = attribute_scores(a.labels[val], own, a.attribute_names)["mean"]
            candidates["key-recovery+attr-mlp"] = (validation, plain_model.predict(decrypt(U)))
        self.add_attribute_rows(name, candidates)
        if not self.can_reconstruct:
            return
        val = self.recon_validation
        if decrypt is not None:  # the plaintext attacks on the decrypted features
            inputs, users = decrypt(A[val]), decrypt(Q)
            candidates = {f"key-recovery+{_attack_name(n)}": Candidate(m, inputs, users) for n, m in decoders.items()}
        else:  # the key-independent view of the ciphertext
            candidates = {
                f"invariants+{_attack_name(n)}": Candidate(self.fit_reconstruction(n, "invariants", A), A[val], Q)
                for n in ("nn-lookup", "autoencoder")
            }
        self.add_reconstruction_rows(name, candidates, plain_model)


def _attack_name(reconstruction: str) -> str:
    """``nn-lookup`` stays itself; a decoder variant is ``recon-<variant>``."""
    return reconstruction if reconstruction == "nn-lookup" else f"recon-{reconstruction}"


def leakage_matrix(
    attacker: LabelledFeatures,
    user_query: LabelledFeatures,
    user_gallery: LabelledFeatures,
    embed,
    profile: AttackProfile,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    ciphers: tuple[str, ...] | None = None,
    transfer: TransferModel | None = None,
    feature_model=None,
) -> LeakageResult:
    """``LeakageResult``: rows (``LeakageRow``) for plaintext and each cipher, and reconstruction grids.

    ``ciphers`` are catalogue names (default: every cipher, ``cipher_names()``).
    Metrics: ``attr_bacc_mean`` (best attack, with ``chance_ci``/``p_value``
    from a label-permutation test and every ``candidates`` score), ``attr_bacc``
    per ``attribute``, and, when the sets carry images, the reconstruction
    rows of ``reconstruction_cells`` (one attack per cipher, chosen on the
    attacker's validation split among the decoders and the ``nn-lookup``
    baseline, every candidate in ``candidates``; grids for each in ``grids``):
    ``recon_cosine_distance``, ``recon_rank1`` (against the users' gallery),
    ``recon_success_rate`` (matches its user at the victim's FMR 1e-3
    threshold), ``recon_attr_bacc_mean`` (the pixel probe applied to the
    reconstructed images), and with a ``transfer`` model
    ``recon_rank1_transfer`` / ``recon_success_rate_transfer``. ``feature_model``:
    the attacker's own differentiable copy of the plaintext extractor (images
    -> features), which the ``consistency`` decoder trains through (without
    one it distils a surrogate from its queries); ``reid_rank1`` (plaintext
    features, and key-independent invariants of each ciphertext),
    ``key_bits_recovered`` (ciphers whose catalogue ``permutation`` is fixed or
    per-dimension, against the true key).
    With images, ``cipher="image"`` rows (attack ``pixel-probe``) give the same
    attribute attack on downsampled pixels: what the image alone reveals, the
    ceiling for any feature vector.
    ``chance`` for attributes is what a constant guess scores; ``chance_ci`` is
    where the reported attack's own predictions land against shuffled labels
    (it sits lower when the model predicts classes the users lack), so "within
    noise of chance" means inside ``chance_ci`` / a large ``p_value``.
    ``validation`` is the early-stopping score on the attacker's held-out
    identities (optimistic: the same split picked the epoch).
    Torch runs on one CPU thread: the attack models are small, so their steps
    gain little from a second core and lose a lot when the cores are busy.
    """
    if not isinstance(profile, AttackProfile):
        raise TypeError(f"profile must be an AttackProfile, got {type(profile).__name__}")
    known = cipher_names()
    ciphers = known if ciphers is None else tuple(ciphers)
    unknown = sorted(set(ciphers) - set(known))
    if unknown:
        raise ShuffleBitsError(f"unknown cipher(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    if len({attacker.features.shape[1], user_query.features.shape[1], user_gallery.features.shape[1]}) != 1:
        raise ShuffleBitsError("attacker, query and gallery features must have the same dimension")
    matrix = _Matrix(
        attacker, user_query, user_gallery, embed, profile, seed, device, progress, transfer, copy=feature_model
    )
    steps = ["plaintext", *ciphers]
    with torch_threads(1), tqdm(steps, desc="leakage matrix", disable=not progress) as bar:
        for step in bar:
            bar.set_postfix_str(step)
            if step == "plaintext":
                if matrix.can_reconstruct:
                    matrix.pixel_probe()
                plain_model, decoders = matrix.plaintext()
            else:
                matrix.cipher(step, plain_model, decoders)
    return LeakageResult(rows=tuple(matrix.rows), grids=matrix.grids)
