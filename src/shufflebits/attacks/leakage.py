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

import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..atomic import atomic_write, atomic_write_text
from ..ciphers.hazmat import experiment_cipher
from ..errors import ShuffleBitsError
from ..runtime import torch_threads
from .attribute import AttributeInference, attribute_scores, permutation_null
from .keyrecovery import recover_permutation, score_recovery, true_permutation
from .reconstruction import Reconstructor, evaluate_reconstruction, grid_png, rank1, reconstruction_grid, shuffled_rank1
from .types import AttackProfile, LabelledFeatures, LeakageResult, LeakageRow
from .views import invariant_view

CIPHERS = ("shufflebits", "shufflebits-dim", "shufflebits-otp", "chacha20", "aes-gcm")
PERMUTATION_CIPHERS = {"shufflebits": False, "shufflebits-dim": True}  # name -> per-dimension key


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

    def __init__(self, attacker, query, gallery, embed, profile: AttackProfile, seed, device, progress):
        self.attacker, self.query, self.gallery, self.embed = attacker, query, gallery, embed
        self.users = _concat(query, gallery)
        self.profile, self.seed, self.device, self.progress = profile, seed, device, progress
        self.rows: list[dict] = []
        self.grids: dict[tuple[str, str], np.ndarray] = {}
        self.can_reconstruct = attacker.images is not None and query.images is not None

    def attribute_model(self, config: str, view: str | None) -> AttributeInference:
        epochs = self.profile.paper_epochs if config == "paper" else self.profile.mlp_epochs
        hidden = self.profile.bits_hidden if view == "bits" else self.profile.hidden
        return AttributeInference(
            config=config, view=view, epochs=epochs, hidden=hidden,
            device=self.device, random_state=self.seed, progress=self.progress,
        )

    def fit_attribute(self, config: str, view: str | None, X_attacker) -> AttributeInference:
        a = self.attacker
        return self.attribute_model(config, view).fit(
            X_attacker, a.labels, groups=a.pids, num_classes=a.num_classes, attribute_names=a.attribute_names
        )

    def add_attribute_rows(self, cipher: str, candidates: dict[str, tuple[float, np.ndarray]]) -> None:
        """``candidates``: attack -> (validation score, predictions on users); reports the best by validation."""
        users = self.users
        scores = {attack: attribute_scores(users.labels, pred, users.attribute_names) for attack, (_, pred) in candidates.items()}
        best = max(candidates, key=lambda attack: candidates[attack][0])
        null = permutation_null(users.labels, candidates[best][1], users.attribute_names, self.profile.permutations, self.seed)
        score = scores[best]
        self.rows.append({
            "cipher": cipher, "attack": best, "metric": "attr_bacc_mean",
            "value": score["mean"], "chance": score["chance_mean"], "n": score["n"], **null["mean"],
            "validation": candidates[best][0],
            "candidates": {attack: {"value": scores[attack]["mean"], "validation": candidates[attack][0]} for attack in candidates},
        })
        for name, per in score["attributes"].items():
            self.rows.append({
                "cipher": cipher, "attack": best, "metric": "attr_bacc", "attribute": name,
                "value": per["bacc"], "chance": per["chance"], "n": per["n"], **null[name],
            })

    def add_reconstruction_rows(self, cipher: str, attack: str, reconstructions: np.ndarray, attribute_model) -> None:
        result = evaluate_reconstruction(
            reconstructions, self.query, self.embed, gallery=self.gallery, attribute_model=attribute_model,
            baseline_images=self.attacker.images, seed=self.seed,
        )
        self.rows.append({
            "cipher": cipher, "attack": attack, "metric": "recon_cosine_distance", "value": result["cosine_distance"],
            "chance": result["chance"], "mean_image_distance": result["mean_image_distance"],
            "noise_distance": result["noise_distance"], "n": result["n"],
            "attr_bacc_mean": result["attributes"]["mean"], "attr_chance_mean": result["attributes"]["chance_mean"],
        })
        self.rows.append({
            "cipher": cipher, "attack": attack, "metric": "recon_rank1", "value": result["rank1"],
            "chance": result["rank1_chance"], "n": result["n"], "gallery_identities": result["gallery_identities"],
        })
        self.grids[(cipher, attack)] = reconstruction_grid(self.query.images, reconstructions)

    def add_reid_row(self, cipher: str, attack: str, query_features, gallery_features) -> None:
        self.rows.append({
            "cipher": cipher, "attack": attack, "metric": "reid_rank1",
            "value": rank1(query_features, gallery_features, self.query, self.gallery),
            "chance": shuffled_rank1(query_features, gallery_features, self.query, self.gallery, self.seed),
            "n": len(query_features),
        })

    def plaintext(self) -> tuple[AttributeInference, dict[str, Reconstructor]]:
        """Plaintext attacks; returns the models that key recovery reuses on decrypted features."""
        a = self.attacker
        models = {f"attr-{config}": self.fit_attribute(config, None, a.features) for config in ("mlp", "paper")}
        self.add_attribute_rows("plaintext", {
            name: (m.validation_score_, m.predict(self.users.features)) for name, m in models.items()
        })
        self.add_reid_row("plaintext", "features", self.query.features, self.gallery.features)
        decoders = {}
        if self.can_reconstruct:
            for variant in self.profile.recon_variants:
                decoders[variant] = Reconstructor(
                    variant=variant, epochs=self.profile.recon_epochs, width=self.profile.recon_width, surrogate_epochs=self.profile.surrogate_epochs,
                    device=self.device, random_state=self.seed, progress=self.progress,
                ).fit(a.features, a.images)
                self.add_reconstruction_rows("plaintext", f"recon-{variant}", decoders[variant].predict(self.query.features), models["attr-mlp"])
        return models["attr-mlp"], decoders

    def cipher(self, name: str, plain_model: AttributeInference, decoders: dict[str, Reconstructor]) -> None:
        a = self.attacker
        cipher = experiment_cipher(name, self.seed)
        A, Q, G = (cipher.encrypt(np.ascontiguousarray(s.features, dtype=np.float32)).words() for s in (a, self.query, self.gallery))
        U = np.concatenate([Q, G])
        candidates = {}
        for attack, view in (("same-key-bits", "bits"), ("same-key-float", "float"), ("invariants", "invariants")):
            model = self.fit_attribute("mlp", view, A)
            candidates[attack] = (model.validation_score_, model.predict(U))
        self.add_reid_row(name, "invariants", invariant_view(Q), invariant_view(G))
        decrypt = None
        if name in PERMUTATION_CIPHERS:
            recovered = recover_permutation(np.concatenate([A, U]), a.features, per_dimension=PERMUTATION_CIPHERS[name])
            truth = true_permutation(cipher, a.features.shape[1])
            result = score_recovery(recovered, truth, self.users.features)
            self.rows.append({
                "cipher": name, "attack": "key-recovery", "metric": "key_bits_recovered", "value": result["bits_exact"],
                "chance": 1.0, "n": recovered.n_words, "of": 32, **{k: v for k, v in result.items() if k != "bits_exact"},
            })
            decrypt = recovered.decrypt
            own = decrypt(A)[plain_model.validation_index_]
            validation = attribute_scores(a.labels[plain_model.validation_index_], plain_model.predict(own), a.attribute_names)["mean"]
            candidates["key-recovery+attr-mlp"] = (validation, plain_model.predict(decrypt(U)))
        self.add_attribute_rows(name, candidates)
        if not self.can_reconstruct:
            return
        if decrypt is not None:
            for variant, decoder in decoders.items():
                self.add_reconstruction_rows(name, f"key-recovery+recon-{variant}", decoder.predict(decrypt(Q)), plain_model)
        else:
            decoder = Reconstructor(
                variant="autoencoder", view="invariants", epochs=self.profile.recon_epochs, width=self.profile.recon_width,
                device=self.device, random_state=self.seed, progress=self.progress,
            ).fit(A, a.images)
            self.add_reconstruction_rows(name, "invariants+recon-autoencoder", decoder.predict(Q), plain_model)


def leakage_matrix(
    attacker: LabelledFeatures,
    user_query: LabelledFeatures,
    user_gallery: LabelledFeatures,
    embed,
    profile: AttackProfile,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    ciphers: tuple[str, ...] = CIPHERS,
) -> LeakageResult:
    """``LeakageResult``: rows (``LeakageRow``) for plaintext and each cipher, and reconstruction grids.

    Metrics: ``attr_bacc_mean`` (best attack, with ``chance_ci``/``p_value``
    from a label-permutation test and every ``candidates`` score), ``attr_bacc``
    per ``attribute``, ``recon_cosine_distance`` and ``recon_rank1`` (when the
    sets carry images; their grids come in ``grids``), ``reid_rank1`` (plaintext
    features, and key-independent invariants of each ciphertext),
    ``key_bits_recovered`` (ShuffleBits fixed and per-dimension, against the true key).
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
    unknown = sorted(set(ciphers) - set(CIPHERS))
    if unknown:
        raise ShuffleBitsError(f"unknown cipher(s) {', '.join(unknown)}; choose from {', '.join(CIPHERS)}")
    if attacker.features.shape[1] != user_query.features.shape[1] or user_query.features.shape[1] != user_gallery.features.shape[1]:
        raise ShuffleBitsError("attacker, query and gallery features must have the same dimension")
    matrix = _Matrix(attacker, user_query, user_gallery, embed, profile, seed, device, progress)
    steps = ["plaintext", *ciphers]
    with torch_threads(1), tqdm(steps, desc="leakage matrix", disable=not progress) as bar:
        for step in bar:
            bar.set_postfix_str(step)
            if step == "plaintext":
                plain_model, decoders = matrix.plaintext()
            else:
                matrix.cipher(step, plain_model, decoders)
    return LeakageResult(rows=tuple(LeakageRow.from_dict(_plain(row)) for row in matrix.rows), grids=matrix.grids)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    return "" if value is None else str(value)


def leakage_markdown(rows, per_attribute: bool = True) -> str:
    """The rows as a Markdown table (one line per row; ``per_attribute=False`` leaves out ``attr_bacc`` rows)."""
    rows = [row.as_dict() if isinstance(row, LeakageRow) else row for row in rows]
    if not per_attribute:
        rows = [row for row in rows if row["metric"] != "attr_bacc"]
    header = ["cipher", "attack", "metric", "attribute", "value", "chance", "chance 95% CI", "p", "n"]
    keys = ["cipher", "attack", "metric", "attribute", "value", "chance", "chance_ci", "p_value", "n"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(key)) for key in keys) + " |")
    return "\n".join(lines) + "\n"


def _plain(value):
    """JSON-safe copy of numpy scalars and arrays."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


GRIDS_FILE = "reconstructions.json"  # [{cipher, attack, file}] naming the grid PNGs beside leakage.json


def write_leakage(result: LeakageResult, out_dir) -> tuple[Path, Path]:
    """``out_dir/leakage.json`` (the list of rows), ``leakage.md``, and one PNG per reconstruction grid."""

    out_dir = Path(out_dir)
    json_path, md_path = out_dir / "leakage.json", out_dir / "leakage.md"
    index = []
    for (cipher, attack), grid in result.grids.items():
        name = f"reconstruction_{cipher}_{attack}.png"
        with atomic_write(out_dir / name, "wb") as handle:
            handle.write(grid_png(grid))
        index.append({"cipher": cipher, "attack": attack, "file": name})
    atomic_write_text(out_dir / GRIDS_FILE, json.dumps(index, indent=1) + "\n")
    atomic_write_text(json_path, json.dumps([row.as_dict() for row in result.rows], indent=1) + "\n")
    atomic_write_text(md_path, leakage_markdown(result.rows))
    return json_path, md_path


def read_leakage(folder) -> LeakageResult:
    """What ``write_leakage`` wrote into ``folder``, back in memory."""
    from PIL import Image

    folder = Path(folder)
    rows = tuple(LeakageRow.from_dict(row) for row in json.loads((folder / "leakage.json").read_text()))
    grids = {}
    for entry in json.loads((folder / GRIDS_FILE).read_text()):
        with Image.open(folder / entry["file"]) as image:
            grids[(entry["cipher"], entry["attack"])] = np.asarray(image.convert("RGB"))
    return LeakageResult(rows=rows, grids=grids)
