"""ONNX export of an encrypting model: onnxruntime's output decrypts to the extractor's features."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from onnx import TensorProto, helper  # noqa: E402

from conftest import shared_file  # noqa: E402
from shufflebits.ciphers import Sealed, cipher_names, generate_key, prf, save_key, spec  # noqa: E402
from shufflebits.ciphers.onnx_ops import MIN_OPSET, append_cipher, exportable_names  # noqa: E402
from shufflebits.cli import main  # noqa: E402
from shufflebits.errors import IntegrityError, ShuffleBitsError  # noqa: E402
from shufflebits.models import build_extractor  # noqa: E402
from shufflebits.models.export import export_encrypting_model  # noqa: E402
from shufflebits.registry import create_cipher  # noqa: E402
from shufflebits.service import BackgroundServer, HttpBlackBox, create_app  # noqa: E402

EXPORTABLE = exportable_names()
SIZE = (64, 32)


def identity_model(d: int):
    """A graph whose 'features' are its float input: lets tests feed any bit pattern."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["features"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", d])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", d])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", MIN_OPSET)])
    model.ir_version = 10
    return model


def run_cipher_graph(cipher, words: np.ndarray) -> Sealed:
    model = append_cipher(identity_model(words.shape[1]), cipher, "features", words.shape[1])
    session = ort.InferenceSession(model.SerializeToString())
    feeds = {"x": words.view(np.float32)}
    nonces = None
    if spec(cipher.name).nonce_bytes:
        nonces = prf.batch_nonces(len(words), -(-words.shape[1] * 4 // 64), lambda n: bytes(range(1, n + 1)))
        feeds["nonces"] = nonces
    out = session.run(None, feeds)[0]
    return Sealed.from_words(
        out.view(np.uint32), cipher=cipher.name, key_fingerprint=cipher.key.fingerprint, dtype="float32", nonces=nonces
    )


def test_exportable_ciphers_are_the_deterministic_format_preserving_ones():
    assert set(EXPORTABLE) == {"shufflebits", "shufflebits-dim", "chacha20"}
    assert set(cipher_names(exact=True)) - set(EXPORTABLE) == {"shufflebits-otp", "aes-gcm"}
    assert not set(cipher_names(exact=False)) & set(EXPORTABLE)  # the float-valued searchable ciphers: no ONNX graph


@pytest.mark.parametrize("name", EXPORTABLE)
def test_graph_ciphertext_equals_the_host_cipher_bit_for_bit(name):
    """Special values (NaN payloads, -0.0, inf, denormals) and random words, d not a multiple of 16."""
    cipher = create_cipher(name)
    specials = [0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC0DEAD, 0xFF800001, 0x00000001, 0x807FFFFF]
    words = np.random.default_rng(0).integers(0, 2**32, (5, 19), dtype=np.uint32)
    words[0, :8] = specials
    sealed = run_cipher_graph(cipher, words)
    assert np.array_equal(cipher.decrypt(sealed).view(np.uint32), words)
    if not spec(name).nonce_bytes:
        assert np.array_equal(sealed.words(), cipher.encrypt(words.view(np.float32)).words())
    else:  # ChaChaPad: the graph's keystream is OpenSSL's for the same nonces
        assert np.array_equal(sealed.words(), cipher._xor(words, sealed.nonces))


@pytest.mark.parametrize("name", EXPORTABLE)
def test_exported_osnet_decrypts_to_its_features(tmp_path, name):
    cipher = create_cipher(name)
    torch.manual_seed(0)
    path = tmp_path / "model.onnx"
    info = export_encrypting_model("osnet_x0_25", cipher, path, size=SIZE)
    assert info["opset"] == MIN_OPSET and info["feature_dim"] == 512
    assert ("nonces" in info["inputs"]) == bool(spec(name).nonce_bytes)
    assert cipher.key.fingerprint in path.read_bytes().decode("latin-1")  # metadata names the key
    torch.manual_seed(0)
    reference = build_extractor("osnet_x0_25", size=SIZE)
    encrypting = build_extractor(f"onnx:{path}")
    images = [np.random.default_rng(k).integers(0, 256, (*SIZE, 3), dtype=np.uint8) for k in range(3)]
    sealed = encrypting(images)
    assert isinstance(sealed, Sealed) and sealed.cipher == name
    decrypted = cipher.decrypt(sealed)
    # onnxruntime and torch order float operations differently: equal to rounding, not bit for bit
    np.testing.assert_allclose(decrypted, reference(images), rtol=0, atol=1e-5)
    # bit for bit against the same graph without its cipher (the ONNX plaintext features)
    plain = onnx.load(path)
    plain.graph.output[0].CopyFrom(helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", 512]))
    session = ort.InferenceSession(plain.SerializeToString())
    batch = encrypting.preprocess(images)
    feeds = {"images": batch}
    if "nonces" in info["inputs"]:
        feeds["nonces"] = sealed.nonces
    assert np.array_equal(session.run(["features"], feeds)[0].view(np.uint32), decrypted.view(np.uint32))


def test_bad_exports_are_one_line_errors(tmp_path, capsys):
    for name in ("aes-gcm", "shufflebits-otp"):
        with pytest.raises(ShuffleBitsError, match="supported: shufflebits, shufflebits-dim, chacha20"):
            export_encrypting_model("osnet_x0_25", create_cipher(name), tmp_path / "m.onnx")
    with pytest.raises(ShuffleBitsError, match="opset >= 26"):
        export_encrypting_model("osnet_x0_25", create_cipher("shufflebits"), tmp_path / "m.onnx", opset=18)
    symbolic = identity_model(8)
    symbolic.graph.output[0].CopyFrom(helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", "d"]))
    onnx.save(symbolic, tmp_path / "symbolic.onnx")
    with pytest.raises(ShuffleBitsError, match="fixed feature width"):
        export_encrypting_model(f"onnx:{tmp_path / 'symbolic.onnx'}", create_cipher("shufflebits"), tmp_path / "m.onnx")
    key = tmp_path / "otp.key"
    save_key(key, generate_key("shufflebits-otp"))
    cases = [
        (["--cipher", "aes-gcm", "--key", str(key)], "supported: shufflebits, shufflebits-dim, chacha20"),
        (["--cipher", "shufflebits-otp", "--key", str(key)], "supported: shufflebits, shufflebits-dim, chacha20"),
        (["--cipher", "shufflebits", "--key", str(key), "--opset", "18"], "opset >= 26"),
        (["--cipher", "shufflebits", "--key", str(key)], "is a shufflebits-otp key"),
    ]
    for argv, message in cases:
        code = main(["export", "--model", "osnet_x0_25", "--out", str(tmp_path / "m.onnx"), *argv])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, err
    assert not list(tmp_path.glob("m.onnx*")) and not list(tmp_path.glob(".*tmp"))


def test_cli_export_and_serve_answer_ciphertext(tmp_path, capsys):
    key = tmp_path / "pad.key"
    save_key(key, generate_key("chacha20"))
    out = tmp_path / "enc.onnx"
    argv = ["export", "--model", "osnet_x0_25", "--cipher", "chacha20", "--key", str(key), "--out", str(out)]
    assert main([*argv, "--size", "64x32"]) == 0
    assert "contains the key" in capsys.readouterr().err
    extractor = build_extractor(f"onnx:{out}")
    with BackgroundServer(create_app(extractor, "token")) as server:
        with pytest.raises(IntegrityError, match="allow_untagged"):  # in-graph ciphertext carries no seal
            HttpBlackBox(server.url, "token").features([np.full((*SIZE, 3), 100, dtype=np.uint8)])
        answer = HttpBlackBox(server.url, "token", allow_untagged=True).features(
            [np.full((*SIZE, 3), 100 + k, dtype=np.uint8) for k in range(2)]
        )
    assert isinstance(answer, Sealed) and answer.cipher == "chacha20" and answer.nonces.shape == (2, 16)
    from shufflebits.ciphers import cipher_for_key, load_key

    features = cipher_for_key(load_key(key)).decrypt(answer)
    assert features.shape == (2, 512) and np.all(np.isfinite(features))
    with pytest.raises(ShuffleBitsError, match="already encrypts"):
        create_app(extractor, "token", create_cipher("chacha20"))


def test_real_onnx_extractor_gets_its_cipher_appended(tmp_path):
    """An existing (older-opset) ONNX re-ID model: converted to opset 26, its ciphertext decrypts to its own output."""
    source = shared_file("weights/osnet_x0_25_msmt17.onnx")
    cipher = create_cipher("shufflebits-dim")
    info = export_encrypting_model(f"onnx:{source}", cipher, tmp_path / "enc.onnx")
    assert info["opset"] == MIN_OPSET and info["feature_dim"] == 512
    batch = np.random.default_rng(0).random((2, 3, 256, 128), dtype=np.float32)
    original = ort.InferenceSession(str(source))
    plain = original.run(None, {original.get_inputs()[0].name: batch})[0]
    encrypted = ort.InferenceSession(str(tmp_path / "enc.onnx"))
    ciphertext = encrypted.run(None, {encrypted.get_inputs()[0].name: batch})[0]
    sealed = Sealed.from_words(
        ciphertext.view(np.uint32), cipher=cipher.name, key_fingerprint=cipher.key.fingerprint, dtype="float32"
    )
    assert np.array_equal(cipher.decrypt(sealed).view(np.uint32), plain.view(np.uint32))
