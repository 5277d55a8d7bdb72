"""Export a feature extractor followed by its cipher as one ONNX model that outputs ciphertext.

The model's input is the preprocessed image batch ``images`` ``(n, 3, H, W)``
(resized and mean/std normalised as ``FeatureExtractor.preprocess`` does),
plus ``nonces`` uint8 ``(n, 16)`` for ChaChaPad; its output ``ciphertext`` is
float32 ``(n, d)`` holding encrypted bit patterns. L2 normalisation, where the
weights' framework uses it, happens in the graph before encryption. The key is
in the file (as lookup tables or ChaCha20 key words): whoever holds the file
holds the key.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..ciphers import Cipher, Sealed, prf
from ..ciphers.onnx_ops import MIN_OPSET, NONCE_INPUT, append_cipher, check_exportable
from ..errors import ShuffleBitsError
from .extractor import OnnxExtractor

TORCH_OPSET = 20  # what torch's TorchScript exporter writes; the graph is converted up to the target opset
FEATURES = "features"


def _torch_graph(name: str, weights, size):
    """``(onnx model, feature width)`` of registry model ``name`` traced by torch's exporter."""
    import onnx
    import torch

    from .extractor import build_extractor

    extractor = build_extractor(name, weights=weights, size=size)

    class Features(torch.nn.Module):
        def __init__(self, model, normalize: bool):
            super().__init__()
            self.model, self.normalize = model, normalize

        def forward(self, images):
            features = self.model(images)
            return torch.nn.functional.normalize(features, dim=1) if self.normalize else features

    module = Features(extractor.model, extractor.normalize_features).eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(
            module,
            (torch.zeros(1, 3, *extractor.input_size),),
            buffer,
            dynamo=False,
            opset_version=TORCH_OPSET,
            input_names=["images"],
            output_names=[FEATURES],
            dynamic_axes={"images": {0: "n"}, FEATURES: {0: "n"}},
        )
    return onnx.load_from_string(buffer.getvalue()), extractor.feature_dim


def _onnx_graph(path: str):
    """``(onnx model, feature width)`` of an existing ONNX extractor with one ``(n, d)`` output."""
    import onnx

    if not Path(path).is_file():
        raise ShuffleBitsError(f"ONNX model {path} does not exist")
    try:
        model = onnx.load(path)
    except Exception as error:  # onnx raises protobuf's own errors for malformed files
        raise ShuffleBitsError(f"cannot load ONNX model {path}: {str(error).splitlines()[0]}") from error
    if len(model.graph.output) != 1:
        raise ShuffleBitsError(f"{path}: expected one feature output, got {len(model.graph.output)}")
    shape = model.graph.output[0].type.tensor_type.shape.dim
    width = shape[-1].dim_value if len(shape) == 2 else 0
    if width <= 0:
        dims = [d.dim_param or d.dim_value for d in shape]
        raise ShuffleBitsError(
            f"{path}: export needs a fixed feature width (an (n, d) output with a number d), got {dims}"
        )
    return model, width


def export_encrypting_model(
    name: str,
    cipher: Cipher,
    out: str | os.PathLike,
    *,
    weights: str | os.PathLike | None = None,
    size: tuple[int, int] | None = None,
    opset: int = MIN_OPSET,
) -> dict:
    """Write the ONNX model ``name`` (registry name or ``onnx:PATH``) + ``cipher`` to ``out``.

    Returns a summary (``feature_dim``, ``opset``, ``inputs``, ``nodes``).
    """
    import onnx
    from onnx import version_converter

    check_exportable(cipher.name, opset)
    if opset > onnx.defs.onnx_opset_version():
        raise ShuffleBitsError(f"opset {opset} is newer than this onnx supports ({onnx.defs.onnx_opset_version()})")
    if Path(out).suffix != ".onnx":
        raise ShuffleBitsError(f"--out must end in .onnx, got {Path(out).name}")
    if name.startswith("onnx:"):
        if weights is not None:
            raise ShuffleBitsError("onnx:PATH models carry their weights; leave weights out")
        model, width = _onnx_graph(name[len("onnx:") :])
    else:
        model, width = _torch_graph(name, weights, size)
    if width <= 0:
        raise ShuffleBitsError(f"{name}: export needs a fixed feature width, the model declares {width}")
    current = max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx"))
    if current < opset:
        model = version_converter.convert_version(model, opset)
    features = model.graph.output[0].name
    model = append_cipher(model, cipher, features, width)
    onnx.checker.check_model(model)
    with atomic_write(out) as handle:
        handle.write(model.SerializeToString())
    return {
        "feature_dim": int(width),
        "opset": int(max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx"))),
        "inputs": [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}],
        "nodes": len(model.graph.node),
        "bytes": os.path.getsize(out),
    }


def exported_cipher(path: str | os.PathLike) -> dict | None:
    """The cipher metadata an exported model carries (``cipher``, ``key_fingerprint``), or None."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # not ONNX: OnnxExtractor reports it
        return None
    props = {p.key: p.value for p in model.metadata_props}
    if "shufflebits.cipher" not in props:
        return None
    return {"cipher": props["shufflebits.cipher"], "key_fingerprint": props["shufflebits.key_fingerprint"]}


class EncryptedOnnxExtractor(OnnxExtractor):
    """An exported encrypting model run by onnxruntime: images in, ``Sealed`` out.

    ChaChaPad models get fresh nonces per batch from ``os.urandom`` (the graph
    cannot draw them); decrypting needs the key, not the model file.
    """

    def __init__(self, path: str | os.PathLike, info: dict, **kwargs):
        super().__init__(path, **kwargs)
        self.cipher_name, self.key_fingerprint = info["cipher"], info["key_fingerprint"]
        self.needs_nonces = NONCE_INPUT in {node.name for node in self.session.get_inputs()}
        self._nonces: list[np.ndarray] = []

    def _run(self, batch: np.ndarray) -> np.ndarray:
        feeds = {self.input_name: batch}
        if self.needs_nonces:
            nonces = prf.batch_nonces(len(batch), -(-self.feature_dim * 4 // prf.BLOCK), os.urandom)
            feeds[NONCE_INPUT] = nonces
            self._nonces.append(nonces)
        return self.session.run(None, feeds)[0]

    def __call__(self, images, flip: bool = False) -> Sealed:
        if flip or self.normalize_features:
            raise ShuffleBitsError(
                "an encrypting ONNX model outputs ciphertext: no flip-test or normalisation after it"
            )
        self._nonces = []
        ciphertext = np.ascontiguousarray(super().__call__(images), dtype=np.float32)
        nonces = np.concatenate(self._nonces) if self.needs_nonces else None
        return Sealed.from_words(
            ciphertext.view(np.uint32),
            cipher=self.cipher_name,
            key_fingerprint=self.key_fingerprint,
            dtype="float32",
            nonces=nonces,
        )
