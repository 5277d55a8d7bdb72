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

import hashlib
import time
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
from sklearn.base import clone
from tqdm.auto import tqdm

from ..ciphers.catalogue import cipher_names, installed, spec
from ..ciphers.hazmat import experiment_cipher
from ..errors import ShuffleBitsError
from ..registry import create_attack
from ..runtime import blas_threads, torch_threads
from .attribute import AttributeInference, validation_score
from .homomorphic import CkksViews, ckks_rows
from .keyrecovery import recover_permutation, score_recovery, true_permutation
from .knownpairs import known_pair_attack, pair_curve, validate_key
from .protection import ciphertext_reid_rows, iso_rows, searchable_rows
from .reconstruction import VARIANTS, Reconstructor
from .reconstruction_cells import Candidate, attacker_split, judged_users, reconstruction_rows
from .reconstruction_eval import TransferModel, rank1, rank1_chance
from .scoring import attribute_scores, permutation_null
from .types import AttackProfile, LabelledFeatures, LeakageResult, LeakageRow
from .views import apply_view, invariant_view

PER_DIMENSION_KEY = {"fixed": False, "per-dimension": True}  # catalogue permutation -> recover_permutation mode
IMAGE = "image"  # the rows of the raw-pixel probe: no feature vector at all, the image itself
SELECTED_BY_VALIDATION = "validation"  # details["selected_by"]: best of the candidates on the attacker's held-out split
ONLY_ATTACK = "only attack"  # one candidate: nothing was chosen
RANK1_SHUFFLES = 200  # query shuffles behind each rank-1 chance level and its interval
PIXEL_PROBE_SIZE = (32, 16)  # (H, W): enough for colours, sleeves and accessories, small enough for an MLP


def pixels(images: np.ndarray) -> np.ndarray:
    """``(n, 3, h, w)`` images in [0, 1] averaged down to ``PIXEL_PROBE_SIZE``, flattened."""
    import torch
    import torch.nn.functional as F

    small = F.adaptive_avg_pool2d(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)), PIXEL_PROBE_SIZE)
    return small.reshape(len(images), -1).numpy()


def _digest(array: np.ndarray) -> tuple:
    """What identifies an array's values: dtype, shape and a hash of its bytes."""
    array = np.ascontiguousarray(array)
    return array.dtype.str, array.shape, hashlib.sha256(array.data).hexdigest()


class _RememberedEmbed:
    """A re-ID model's ``embed``, asked once per distinct image.

    The matrix sends the same images again and again: every reconstruction
    cell's noise and mean-image baselines, the lookup's answers (attacker
    images, whichever cipher's view chose them), and decryptions equal to the
    plaintext give the plaintext's reconstructions. Only images not seen yet
    go to the model, in one batch per call. The model is deterministic and
    embeds each image independently (eval mode), so a remembered answer is the
    one it gave; only float rounding may differ from embedding the image in
    another batch, the same way in every run.
    """

    def __init__(self, embed):
        self.embed = embed
        self.answers: dict[bytes, np.ndarray] = {}

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images)
        prefix = f"{images.dtype.str}{images.shape[1:]}".encode()
        keys = [hashlib.sha256(prefix + image.data).digest() for image in images]
        new = list({key: index for index, key in enumerate(keys) if key not in self.answers}.items())
        if new:
            features = np.asarray(self.embed(images[[index for _, index in new]]))
            for (key, _), row in zip(new, features):
                self.answers[key] = row
        if not keys:
            return np.asarray(self.embed(images))
        return np.stack([self.answers[key] for key in keys])


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
        self.attacker, self.query, self.gallery, self.embed = attacker, query, gallery, _RememberedEmbed(embed)
        self.transfer = transfer if transfer is None else replace(transfer, embed=_RememberedEmbed(transfer.embed))
        self.users = _concat(query, gallery)
        self.profile, self.seed, self.device, self.progress = profile, seed, device, progress
        self.rows: list[LeakageRow] = []
        self.grids: dict[tuple[str, str], np.ndarray] = {}
        self.seconds: dict[str, dict[str, float]] = {}
        self.view_attacks: dict[tuple, tuple[float, np.ndarray]] = {}  # see ``view_attack``
        self.can_reconstruct = attacker.images is not None and query.images is not None
        self.recon_train, self.recon_validation = attacker_split(attacker, seed)
        self.judged_users = judged_users(len(query), profile.recon_queries, seed)
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

    @contextmanager
    def timed(self, cipher: str, attack: str):
        """Add the block's wall time to ``seconds[cipher][attack]``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            per = self.seconds.setdefault(cipher, {})
            per[attack] = per.get(attack, 0.0) + time.perf_counter() - start

    def view_settings(self, view: str | None) -> dict:
        """The MLP's width and input dropout on ``view``. The bit view's 16,384 inputs per vector take
        a narrow first layer (``bits_hidden``) and no input dropout: drawing its mask took most of the
        view's training time, and on the quick study's attacker it scored the same without."""
        if view == "bits":
            return {"hidden": self.profile.bits_hidden, "input_dropout": 0.0}
        return {"hidden": self.profile.hidden}

    def attribute_model(self, config: str, view: str | None, settings: dict | None = None) -> AttributeInference:
        settings = self.view_settings(view) if settings is None else settings
        return clone(self.templates[f"attr-{config}"]).set_params(view=view, **settings)

    def reconstructor(self, variant: str, view: str | None = None) -> Reconstructor:
        return clone(self.templates[f"recon-{variant}"]).set_params(view=view)

    def fit_reconstruction(self, name: str, view: str | None, X_attacker, train: np.ndarray | None = None):
        """A reconstruction attack (``nn-lookup`` or a decoder variant) fitted on the attacker's training identities.

        ``X_attacker`` has a row per attacker image, or, with ``train``, one per
        attacker row listed there (a subsample of ``recon_train``).
        """
        model = clone(self.templates["nn-lookup"]) if name == "nn-lookup" else self.reconstructor(name)
        if train is None:
            X_attacker, train = X_attacker[self.recon_train], self.recon_train
        return model.set_params(view=view).fit(X_attacker, self.attacker.images[train])

    def fit_attribute(self, config: str, view: str | None, X_attacker, settings: dict | None = None):
        a = self.attacker
        return self.attribute_model(config, view, settings).fit(
            X_attacker, a.labels, groups=a.pids, num_classes=a.num_classes, attribute_names=a.attribute_names
        )

    def view_attack(self, view: str, A: np.ndarray, U: np.ndarray) -> tuple[float, np.ndarray]:
        """The MLP on a view of the attacker's words ``A``: (validation score, predictions on the users' ``U``).

        Fitted on the view's values (exactly what fitting on the words with
        ``view`` does) and remembered by them: a view that no key changes
        (the invariants of every bit permutation) is learnt once, not once per cipher.
        """
        X, Z = apply_view(view, A), apply_view(view, U)
        settings = self.view_settings(view)
        key = (tuple(sorted(settings.items())), _digest(X), _digest(Z))
        if key not in self.view_attacks:
            model = self.fit_attribute("mlp", None, X, settings)
            self.view_attacks[key] = (model.validation_score_, model.predict(Z))
        return self.view_attacks[key]

    def add_attribute_rows(
        self, cipher: str, candidates: dict[str, tuple[float, np.ndarray]], users: LabelledFeatures | None = None
    ) -> None:
        """``candidates``: attack -> (validation score, predictions on users); reports the best by validation."""
        users = self.users if users is None else users
        names = users.attribute_names
        scores = {attack: attribute_scores(users.labels, pred, names) for attack, (_, pred) in candidates.items()}
        best = max(candidates, key=lambda attack: candidates[attack][0])
        null = permutation_null(
            users.labels, candidates[best][1], names, self.profile.permutations, self.seed, groups=users.pids
        )
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
                    "selected_by": SELECTED_BY_VALIDATION if len(candidates) > 1 else ONLY_ATTACK,
                    "single_class": score["single_class"],
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

    def add_reconstruction_rows(
        self, cipher: str, candidates: dict[str, Candidate], attribute_model, validation_rows=None, users=None
    ) -> None:
        """The validation-chosen reconstruction's rows (``reconstruction_cells``) and every candidate's grid.

        ``validation_rows`` and ``users`` (``(LabelledFeatures, rows of the query set)``)
        default to the attacker's whole held-out split and the profile's
        ``recon_queries`` users (``judged_users``); a cipher attacked on
        subsamples passes its own (candidates' ``user_inputs`` on those rows).
        """
        transfer = self.transfer
        if users is None:
            rows = self.judged_users
            candidates = {attack: replace(c, user_inputs=c.user_inputs[rows]) for attack, c in candidates.items()}
            query = self.query.take(rows)
        else:
            query, rows = users
        if transfer is not None:
            transfer = replace(transfer, query_features=transfer.query_features[rows])
        rows, grids = reconstruction_rows(
            cipher,
            candidates,
            attacker=self.attacker,
            validation_rows=self.recon_validation if validation_rows is None else validation_rows,
            query=query,
            gallery=self.gallery,
            embed=self.embed,
            attribute_model=attribute_model,
            image_attributes=None if self.pixel_model is None else self.image_attributes,
            image_ceiling=self.image_ceiling,
            transfer=transfer,
            seed=self.seed,
        )
        self.rows.extend(rows)
        self.grids.update(grids)

    def add_reid_row(self, cipher: str, attack: str, query_features, gallery_features, own, pairs=None) -> None:
        """``own``: the attacker's images in the same view; their rank-1 among themselves is the validation score."""
        null = rank1_chance(
            query_features, gallery_features, self.query, self.gallery, self.seed, n_shuffles=RANK1_SHUFFLES
        )
        self.rows.append(
            LeakageRow(
                cipher=cipher,
                attack=attack,
                metric="reid_rank1",
                value=rank1(query_features, gallery_features, self.query, self.gallery),
                chance=null.pop("chance"),
                n=len(query_features),
                pairs=pairs,
                details={**null, "validation": rank1(own, own, self.attacker, self.attacker)},
            )
        )

    def pixel_probe(self) -> None:
        """The attribute attack on the images themselves, downsampled: what the image alone reveals.

        The ceiling a feature vector is measured against: the same MLP on
        ``PIXEL_PROBE_SIZE`` pixels of the attacker's images, scored on the users'
        query images (the users' images the study keeps).
        """
        a = self.attacker
        with self.timed(IMAGE, "pixel-probe"):
            X_attacker, X_users = (pixels(images) for images in (a.images, self.query.images))
            model = self.attribute_model("mlp", None).fit(
                X_attacker, a.labels, groups=a.pids, num_classes=a.num_classes, attribute_names=a.attribute_names
            )
            candidates = {"pixel-probe": (model.validation_score_, model.predict(X_users))}
            self.add_attribute_rows(IMAGE, candidates, self.query)
            self.pixel_model = model  # also the attribute classifier applied to reconstructed images
            self.image_ceiling = model.score(X_users, self.query.labels)  # on the users' own images

    def plaintext(self) -> tuple[AttributeInference, dict[str, Reconstructor]]:
        """Plaintext attacks; returns the models that key recovery reuses on decrypted features."""
        a, name = self.attacker, "plaintext"
        models = {}
        for config in ("mlp", "paper"):
            with self.timed(name, f"attr-{config}"):
                models[f"attr-{config}"] = self.fit_attribute(config, None, a.features)
        with self.timed(name, "attribute rows"):
            self.add_attribute_rows(
                name, {attack: (m.validation_score_, m.predict(self.users.features)) for attack, m in models.items()}
            )
        q, g = self.query, self.gallery
        with self.timed(name, "re-id"):
            self.add_reid_row(name, "features", q.features, g.features, a.features)
            self.rows += ciphertext_reid_rows(name, q.features, g.features, "euclidean", q, g, self.seed)
        with self.timed(name, "cross-key"):
            self.rows += iso_rows(name, q.features, g.features, q, g, {"identity": q.features}, self.seed)
        decoders = {}
        if self.can_reconstruct:
            for variant in ("nn-lookup", *self.profile.recon_variants):
                with self.timed(name, f"fit {_attack_name(variant)}"):
                    decoders[variant] = self.fit_reconstruction(variant, None, a.features)
            val, Q = a.features[self.recon_validation], q.features
            candidates = {_attack_name(variant): Candidate(m, val, Q) for variant, m in decoders.items()}
            with self.timed(name, "reconstruction rows"):
                self.add_reconstruction_rows(name, candidates, models["attr-mlp"])
        return models["attr-mlp"], decoders

    def known_pairs(self, name, cipher, A, Q, G, plain_model, candidates) -> list[LeakageRow]:
        """Key recovery from k of the attacker's own pairs, for each k of the profile, then attacks through the key.

        Returns the curve's rows (key bits and attribute inference per k); the
        largest k joins ``candidates`` and its key gives the re-ID row.
        """
        a, users = self.attacker, self.users
        U = np.concatenate([Q, G])
        attack = known_pair_attack(spec(name), ciphertexts=np.concatenate([A, U]), reference=a.features)
        if attack is None:
            return []
        curve = pair_curve(attack, cipher, a.features, A, users.features, U, self.profile.known_pairs, self.seed)
        val, names, rows = plain_model.validation_index_, a.attribute_names, []
        for k, key, validation, evaluation in zip(curve.pairs, curve.keys, curve.validation, curve.evaluation):
            details = dict(evaluation)
            value = details.pop("value")
            rows.append(
                LeakageRow(
                    cipher=name,
                    attack="known-pairs",
                    metric=attack.metric,
                    value=value,
                    chance=1.0,
                    n=key.n_words,
                    pairs=k,
                    details={"validation": validation, **details},
                )
            )
            own = validation_score(a.labels[val], plain_model.predict(key.decrypt(A[val])), names)
            predictions = plain_model.predict(key.decrypt(U))
            score = attribute_scores(users.labels, predictions, users.attribute_names)
            null = permutation_null(
                users.labels, predictions, users.attribute_names, self.profile.permutations, self.seed, users.pids
            )
            rows.append(
                LeakageRow(
                    cipher=name,
                    attack="known-pairs+attr-mlp",
                    metric="attr_bacc_mean",
                    value=score["mean"],
                    chance=score["chance_mean"],
                    n=score["n"],
                    pairs=k,
                    details={**null["mean"], "validation": own, "single_class": score["single_class"]},
                )
            )
        if curve.pairs:
            key, k = curve.keys[-1], curve.pairs[-1]
            candidates["known-pairs+attr-mlp"] = (rows[-1].details["validation"], plain_model.predict(key.decrypt(U)))
            self.add_reid_row(name, "known-pairs", key.decrypt(Q), key.decrypt(G), key.decrypt(A), pairs=k)
        return rows

    def cipher(self, name: str, plain_model: AttributeInference, decoders: dict[str, Reconstructor]) -> None:
        a = self.attacker
        with self.timed(name, "encrypt"):
            cipher = experiment_cipher(name, self.seed)
            sets = (a, self.query, self.gallery)
            sealed = [cipher.encrypt(np.ascontiguousarray(s.features, dtype=np.float32)) for s in sets]
            A, Q, G = (s.words() for s in sealed)
            U = np.concatenate([Q, G])
        estimates, inversion = {}, None
        if spec(name).matchable:
            with self.timed(name, "scheme comparison and inversions"):
                rows, inversion, (VA, VQ, VG), estimates = searchable_rows(name, *sealed, *sets, self.seed)
            self.rows += rows
        candidates = {}
        for attack, view in (("same-key-bits", "bits"), ("same-key-float", "float"), ("invariants", "invariants")):
            with self.timed(name, attack):
                candidates[attack] = self.view_attack(view, A, U)
        with self.timed(name, "invariants re-id"):
            self.add_reid_row(name, "invariants", invariant_view(Q), invariant_view(G), invariant_view(A))
        with self.timed(name, "key-recovery"):
            decrypt = self.key_recovery(name, cipher, A, Q, U, plain_model, candidates, estimates)
        if inversion is not None:  # known pairs invert every template: the plaintext attack on the inversions
            val = plain_model.validation_index_
            own = plain_model.predict(inversion.predict(VA[val]).astype(np.float32))
            validation = validation_score(a.labels[val], own, a.attribute_names)
            inverted = inversion.predict(np.concatenate([VQ, VG])).astype(np.float32)
            candidates["known-pairs+attr-mlp"] = (validation, plain_model.predict(inverted))
        with self.timed(name, "cross-key"):
            second_key = experiment_cipher(name, self.seed + 1)
            gallery_b = second_key.encrypt(np.ascontiguousarray(self.gallery.features, dtype=np.float32))
            self.rows += iso_rows(name, sealed[1], gallery_b, self.query, self.gallery, estimates, self.seed)
        with self.timed(name, "known-pairs"):
            curve_rows = self.known_pairs(name, cipher, A, Q, G, plain_model, candidates)
        with self.timed(name, "attribute rows"):
            self.add_attribute_rows(name, candidates)
        self.rows.extend(curve_rows)
        if not self.can_reconstruct:
            return
        val = self.recon_validation
        if inversion is not None:  # matchable: the plaintext attacks on the known-pair inversions
            inputs, users = (inversion.predict(v).astype(np.float32) for v in (VA[val], VQ))
            candidates = {f"known-pairs+{_attack_name(n)}": Candidate(m, inputs, users) for n, m in decoders.items()}
        elif decrypt is not None:  # the plaintext attacks on the decrypted features
            inputs, users = decrypt(A[val]), decrypt(Q)
            candidates = {f"key-recovery+{_attack_name(n)}": Candidate(m, inputs, users) for n, m in decoders.items()}
        else:  # the key-independent view of the ciphertext
            candidates = {}
            for variant in ("nn-lookup", "autoencoder"):
                attack = f"invariants+{_attack_name(variant)}"
                with self.timed(name, f"fit {attack}"):
                    candidates[attack] = Candidate(self.fit_reconstruction(variant, "invariants", A), A[val], Q)
        with self.timed(name, "reconstruction rows"):
            self.add_reconstruction_rows(name, candidates, plain_model)

    def homomorphic(self, name: str, plain_model: AttributeInference) -> None:
        """A homomorphic scheme (``attacks.homomorphic``): its rows, and same-key learning on its ciphertexts."""
        with self.timed(name, "encrypted matching, renewal, linkage, score reveal"):
            rows, views = ckks_rows(name, self.attacker, self.query, self.gallery, self.seed, self.profile.ckks)
        self.rows += rows
        own = views.attacker
        with self.timed(name, "same-key-coefficients"):
            model = self.attribute_model("mlp", None).fit(
                views.attacker_view,
                own.labels,
                groups=own.pids,
                num_classes=own.num_classes,
                attribute_names=own.attribute_names,
            )
            candidates = {"same-key-coefficients": (model.validation_score_, model.predict(views.users_view))}
        with self.timed(name, "attribute rows"):
            self.add_attribute_rows(name, candidates, views.users)
        if self.can_reconstruct:
            self.homomorphic_reconstruction(name, views, plain_model)

    def homomorphic_reconstruction(self, name: str, views: CkksViews, plain_model: AttributeInference) -> None:
        """Same-key reconstruction: decoders fitted on the coefficients of the attacker's own templates.

        The templates ``views`` encrypted for same-key learning are split as every
        reconstruction's are (training identities fit, held-out ones choose); the
        users are the sampled queries of ``views``. Without both halves there is
        nothing to fit or choose with, and no rows.
        """
        rows = views.attacker_rows
        fit, held_out = np.isin(rows, self.recon_train), np.isin(rows, self.recon_validation)
        if not (fit.any() and held_out.any()):
            return
        candidates = {}
        for variant in ("nn-lookup", "autoencoder"):
            attack = f"same-key-coefficients+{_attack_name(variant)}"
            with self.timed(name, f"fit {attack}"):
                model = self.fit_reconstruction(variant, None, views.attacker_view[fit], train=rows[fit])
            candidates[attack] = Candidate(model, views.attacker_view[held_out], views.users_view)
        with self.timed(name, "reconstruction rows"):
            users = (views.users, views.users_rows)
            self.add_reconstruction_rows(name, candidates, plain_model, rows[held_out], users)

    def key_recovery(self, name, cipher, A, Q, U, plain_model, candidates, estimates):
        """Ciphertext-only key recovery where the catalogue's ``permutation`` allows it; returns its ``decrypt``."""
        a = self.attacker
        permutation = spec(name).permutation
        if permutation not in PER_DIMENSION_KEY:
            return None
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
                details={
                    "of": 32,
                    **{k: v for k, v in result.items() if k != "bits_exact"},
                    "validation": validate_key(recovered, a.features, A),
                    "words_exact": validate_key(recovered, self.users.features, U),  # the users' words
                },
            )
        )
        decrypt = recovered.decrypt
        estimates["key-recovery"] = decrypt(Q)
        val = plain_model.validation_index_
        own = plain_model.predict(decrypt(A)[val])
        validation = validation_score(a.labels[val], own, a.attribute_names)
        candidates["key-recovery+attr-mlp"] = (validation, plain_model.predict(decrypt(U)))
        return decrypt


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

    ``ciphers`` are catalogue names (default: every cipher whose optional extra is installed).
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
    per-dimension, against the true key): attack ``key-recovery`` from
    ciphertext statistics alone, and ``known-pairs`` from ``pairs`` of the
    attacker's own plaintext–ciphertext pairs for each count in the profile's
    ``known_pairs`` (with ``words_exact``, the users' words decrypted
    bit-exactly), each followed by an ``attr_bacc_mean`` row through that key
    and, for the largest count, a ``reid_rank1`` row.
    Chance intervals: labels are shuffled by identity (users are several images
    of one person); rank-1 chance is the mean of ``RANK1_SHUFFLES`` query
    shuffles with its ``chance_ci``. Attributes with a single class among the
    users are left out of the mean and named in ``single_class``. Every row that
    can be chosen carries ``validation``, its figure on the attacker's own
    held-out data (rank-1 among the attacker's images, words of its own pairs
    decrypted bit-exactly); rows that chose among ``candidates`` say so in
    ``selected_by``.
    Template protection (``attacks.protection``): ``reid_rank1_ciphertext`` /
    ``reid_map_ciphertext``, ``known_pair_cosine``, ``ciphertext_only_cosine`` for
    matchable ciphers, and ``unlinkability_dsys``, ``renewability_rank1``,
    ``irreversibility_success`` for every cipher and plaintext. Matchable ciphers
    also get the plaintext attacks on their known-pair inversions
    (``known-pairs+attr-mlp``, ``known-pairs+recon-*``).
    A homomorphic scheme (``ckks``) gets the rows of ``attacks.homomorphic`` instead of
    the per-vector attacks, on subsamples whose sizes each row records.
    With images, ``cipher="image"`` rows (attack ``pixel-probe``) give the same
    attribute attack on downsampled pixels: what the image alone reveals, the
    ceiling for any feature vector.
    ``chance`` for attributes is what a constant guess scores; ``chance_ci`` is
    where the reported attack's own predictions land against shuffled labels
    (it sits lower when the model predicts classes the users lack), so "within
    noise of chance" means inside ``chance_ci`` / a large ``p_value``.
    ``validation`` is the early-stopping score on the attacker's held-out
    identities (optimistic: the same split picked the epoch).
    Torch and NumPy's BLAS run on one CPU thread: the attack models and products
    are small, so they gain little from a second core and lose a lot when the
    cores are busy. ``LeakageResult.seconds`` says where the time went.
    """
    if not isinstance(profile, AttackProfile):
        raise TypeError(f"profile must be an AttackProfile, got {type(profile).__name__}")
    known = cipher_names()
    ciphers = tuple(name for name in known if installed(name)) if ciphers is None else tuple(ciphers)
    unknown = sorted(set(ciphers) - set(known))
    if unknown:
        raise ShuffleBitsError(f"unknown cipher(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    if len({attacker.features.shape[1], user_query.features.shape[1], user_gallery.features.shape[1]}) != 1:
        raise ShuffleBitsError("attacker, query and gallery features must have the same dimension")
    matrix = _Matrix(
        attacker, user_query, user_gallery, embed, profile, seed, device, progress, transfer, copy=feature_model
    )
    steps = ["plaintext", *ciphers]
    with torch_threads(1), blas_threads(1), tqdm(steps, desc="leakage matrix", disable=not progress) as bar:
        for step in bar:
            bar.set_postfix_str(step)
            if step == "plaintext":
                if matrix.can_reconstruct:
                    matrix.pixel_probe()
                plain_model, decoders = matrix.plaintext()
            elif spec(step).homomorphic:
                matrix.homomorphic(step, plain_model)
            else:
                matrix.cipher(step, plain_model, decoders)
    return LeakageResult(rows=tuple(matrix.rows), grids=matrix.grids, seconds=matrix.seconds)
