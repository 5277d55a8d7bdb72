"""Tampering with encrypted answers and files, for every cipher: the key holder must notice.

Answers come from a real server on loopback; an attacker between it and the key
holder flips bits, swaps, drops or duplicates rows (rewriting every public field
to match), splices rows from another answer, strips the seal or replays another
request's answer. Each must fail at ``decode_answer`` or ``decrypt``, never
decrypt to other plaintext. Files get random byte flips anywhere in the archive.
"""

from __future__ import annotations

import copy

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from shufflebits.ciphers import cipher_names, spec
from shufflebits.ciphers.files import load_encrypted, save_encrypted
from shufflebits.errors import IntegrityError, ShuffleBitsError
from shufflebits.registry import create_cipher
from shufflebits.service import BackgroundServer, HttpBlackBox, create_app, decode_answer
from shufflebits.service.wire import REQUEST_ID_HEADER, answer_context, decode_array, encode_array
from test_service import TOKEN, FakeExtractor, make_images, png_bytes

ROWS = 3
FIXTURE = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def fetch(url: str, images: list[Image.Image], request_id: str) -> dict:
    files = [("images", (f"{i}.png", png_bytes(image), "image/png")) for i, image in enumerate(images)]
    headers = {"Authorization": f"Bearer {TOKEN}", REQUEST_ID_HEADER: request_id}
    answer = httpx.post(f"{url}/v1/features", files=files, headers=headers, timeout=30)
    assert answer.status_code == 200
    return answer.json()


@pytest.fixture(scope="module", params=cipher_names(exact=True))
def answers(request):
    """(cipher, answer A, answer B, plaintext of A): two 3-row answers of one server."""
    cipher = create_cipher(request.param)
    first, second = make_images(ROWS, seed=20), make_images(ROWS, seed=21)
    with BackgroundServer(create_app(FakeExtractor(), TOKEN, cipher)) as server:
        a, b = fetch(server.url, first, "a" * 32), fetch(server.url, second, "b" * 32)
    return cipher, a, b, FakeExtractor()(first)


def key_holder(cipher, payload: dict) -> np.ndarray:
    return cipher.decrypt(decode_answer(payload), require_authenticated=True)


def rows_of(payload: dict) -> tuple[np.ndarray, np.ndarray | None]:
    """The answer's ciphertext and nonces as integer rows."""
    data = decode_array(payload["features"], payload["shape"], payload["dtype"])
    words = data.view(f"u{data.dtype.itemsize}")
    encryption = payload["encryption"]
    nonces = None
    if encryption["nonces"] is not None:
        nonces = decode_array(encryption["nonces"], encryption["nonce_shape"], encryption["nonce_dtype"])
    return words, nonces


def with_rows(payload: dict, words: np.ndarray, nonces: np.ndarray | None) -> dict:
    """``payload`` carrying these rows, every public field rewritten to match (the strongest forgery)."""
    edited = copy.deepcopy(payload)
    encryption = edited["encryption"]
    data = words.view(np.dtype(payload["dtype"]))
    edited["features"], edited["shape"], _ = encode_array(data)
    encryption["plaintext_shape"] = [len(words), *encryption["plaintext_shape"][1:]]
    if nonces is not None:
        encryption["nonces"], encryption["nonce_shape"], _ = encode_array(nonces)
    for seal in encryption["seals"]:
        seal["rows"] = len(words)
        seal["context"] = answer_context(edited["response_id"], len(words)).hex()
    return edited


def refused(cipher, payload: dict) -> None:
    with pytest.raises(ShuffleBitsError):
        key_holder(cipher, payload)


def test_untouched_answers_decrypt_and_are_sealed(answers):
    cipher, a, _, plain = answers
    sealed = decode_answer(a)
    assert sealed.authenticated and a["encryption"]["authenticated"] is True
    assert len(sealed.seals) == 1 and sealed.seals[0].context == answer_context("a" * 32, ROWS)
    assert key_holder(cipher, a).tobytes() == plain.tobytes()


@FIXTURE
@given(data=st.data())
def test_any_bit_flip_fails(answers, data):
    cipher, a, _, _ = answers
    words, nonces = rows_of(a)
    raw = words.view(np.uint8).reshape(-1).copy()
    target = data.draw(st.sampled_from(["ciphertext", "nonces"] if nonces is not None else ["ciphertext"]))
    if target == "nonces":
        raw_nonces = nonces.reshape(-1).copy()
        raw_nonces[data.draw(st.integers(0, raw_nonces.size - 1))] ^= 1 << data.draw(st.integers(0, 7))
        refused(cipher, with_rows(a, words, raw_nonces.reshape(nonces.shape)))
    else:
        raw[data.draw(st.integers(0, raw.size - 1))] ^= 1 << data.draw(st.integers(0, 7))
        refused(cipher, with_rows(a, raw.view(words.dtype).reshape(words.shape), nonces))


@FIXTURE
@given(order=st.permutations(range(ROWS)).filter(lambda order: list(order) != list(range(ROWS))))
def test_reordered_rows_fail(answers, order):
    cipher, a, _, _ = answers
    words, nonces = rows_of(a)
    refused(cipher, with_rows(a, words[list(order)], None if nonces is None else nonces[list(order)]))


@pytest.mark.parametrize("kept", [[0, 1], [1, 2], [0, 2], [0], [0, 1, 2, 2], [0, 0, 1]])
def test_dropped_or_duplicated_rows_fail(answers, kept):
    cipher, a, _, _ = answers
    words, nonces = rows_of(a)
    refused(cipher, with_rows(a, words[kept], None if nonces is None else nonces[kept]))


@FIXTURE
@given(mine=st.integers(0, ROWS - 1), theirs=st.integers(0, ROWS - 1))
def test_rows_spliced_from_another_answer_fail(answers, mine, theirs):
    cipher, a, b, _ = answers
    words, nonces = rows_of(a)
    other_words, other_nonces = rows_of(b)
    words, nonces = words.copy(), None if nonces is None else nonces.copy()
    words[mine] = other_words[theirs]
    if nonces is not None:
        nonces[mine] = other_nonces[theirs]
    refused(cipher, with_rows(a, words, nonces))


def test_a_stripped_or_rebound_seal_fails(answers):
    cipher, a, b, _ = answers
    stripped = copy.deepcopy(a)
    stripped["encryption"]["seals"] = []
    if spec(cipher.name).authenticated:  # AES-GCM's associated data needs the seal: nothing decrypts without it
        refused(cipher, stripped)
        stripped["encryption"]["authenticated"] = False
        with pytest.raises(IntegrityError, match="stripped"):
            decode_answer(stripped)
    else:
        with pytest.raises(IntegrityError, match="stripped"):
            decode_answer(stripped)
        stripped["encryption"]["authenticated"] = False
        assert decode_answer(stripped).authenticated is False
        with pytest.raises(IntegrityError, match="authenticated=False"):
            key_holder(cipher, stripped)
    relabelled = copy.deepcopy(b)
    relabelled["response_id"] = "a" * 32
    with pytest.raises(IntegrityError, match="not bound"):
        decode_answer(relabelled)
    rebound = copy.deepcopy(b)
    rebound["response_id"] = "a" * 32
    rebound["encryption"]["seals"][0]["context"] = answer_context("a" * 32, ROWS).hex()
    refused(cipher, rebound)


def test_the_client_refuses_an_answer_to_another_request(answers):
    from fastapi.responses import JSONResponse

    _, _, b, _ = answers

    async def replaying(scope, receive, send):
        await JSONResponse(b)(scope, receive, send)

    with BackgroundServer(replaying) as server, HttpBlackBox(server.url, TOKEN) as box:
        with pytest.raises(IntegrityError, match="another request"):
            box.features(make_images(ROWS))


def test_joined_batches_keep_one_seal_each(answers):
    cipher, _, _, _ = answers
    images = make_images(5, seed=22)
    with BackgroundServer(create_app(FakeExtractor(), TOKEN, cipher)) as server:
        with HttpBlackBox(server.url, TOKEN, batch_size=2) as box:
            joined = box.features(images)
    assert [seal.rows for seal in joined.seals] == [2, 2, 1]
    assert cipher.decrypt(joined, require_authenticated=True).tobytes() == FakeExtractor()(images).tobytes()


@pytest.fixture(scope="module", params=cipher_names(exact=True))
def encrypted_file(request, tmp_path_factory):
    cipher = create_cipher(request.param)
    x = np.random.default_rng(3).standard_normal((4, 6)).astype(np.float32)
    path = tmp_path_factory.mktemp("files") / "e.npz"
    save_encrypted(path, cipher, cipher.encrypt(x, authenticate=True), [f"p{i}" for i in range(4)])
    return cipher, path.read_bytes(), x


@FIXTURE
@given(data=st.data())
def test_any_byte_flip_in_a_file_fails_cleanly_or_changes_nothing(encrypted_file, data, tmp_path_factory):
    cipher, blob, x = encrypted_file
    position = data.draw(st.integers(0, len(blob) - 1))
    flipped = bytearray(blob)
    flipped[position] ^= 1 << data.draw(st.integers(0, 7))
    path = tmp_path_factory.mktemp("flip") / "e.npz"
    path.write_bytes(bytes(flipped))
    try:
        sealed, _ = load_encrypted(path, cipher)
        plain = cipher.decrypt(sealed, require_authenticated=True)
    except ShuffleBitsError as error:
        assert "\n" not in str(error)
    else:  # a byte zip ignores (a timestamp): the content is untouched
        assert plain.tobytes() == x.tobytes()


class FiniteExtractor(FakeExtractor):
    """Finite 16-d features (approximate ciphers encrypt real numbers only)."""

    def __call__(self, images):
        return np.stack([np.asarray(image, np.float32)[:4, :4, 0].ravel() / 255.0 for image in images])


@pytest.mark.parametrize("name", cipher_names(exact=False, invertible=True, homomorphic=False))
def test_approximate_ciphers_serve_sealed_answers_and_refuse_non_finite_features(name):
    cipher = create_cipher(name)
    images = make_images(ROWS, seed=22)
    with BackgroundServer(create_app(FiniteExtractor(), TOKEN, cipher)) as server:
        payload = fetch(server.url, images, "c" * 32)
    plain = FiniteExtractor()(images)
    assert np.allclose(key_holder(cipher, payload), plain, atol=1e-3)
    with BackgroundServer(create_app(FakeExtractor(), TOKEN, cipher)) as server:  # a NaN word in every row
        files = [("images", ("0.png", png_bytes(images[0]), "image/png"))]
        answer = httpx.post(
            f"{server.url}/v1/features", files=files, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        )
    assert answer.status_code == 500 and "cannot be encrypted" in answer.json()["detail"]


@pytest.mark.parametrize("cipher_name", cipher_names(exact=True, authenticated=False, format_preserving=True))
def test_the_client_refuses_answers_whose_seals_were_stripped(cipher_name):
    """Over plain HTTP a relay can drop the seals, clear the flag and flip bit 31: the client must not hand that on."""
    cipher = create_cipher(cipher_name)
    images = make_images(ROWS, seed=23)
    with BackgroundServer(create_app(FakeExtractor(), TOKEN, cipher)) as real:

        async def stripping(scope, receive, send):
            from fastapi.responses import JSONResponse
            from starlette.requests import Request

            request = Request(scope, receive)
            headers = {key: value for key, value in request.headers.items() if key in ("authorization", "content-type")}
            headers[REQUEST_ID_HEADER] = request.headers[REQUEST_ID_HEADER]
            async with httpx.AsyncClient() as client:
                body = await request.body()
                answer = (await client.post(f"{real.url}/v1/features", content=body, headers=headers)).json()
            words, nonces = rows_of(answer)
            words = words.copy()
            words[0, 0] ^= words.dtype.type(1 << (8 * words.dtype.itemsize - 1))
            answer = with_rows(answer, words, nonces)
            answer["encryption"]["seals"], answer["encryption"]["authenticated"] = [], False
            await JSONResponse(answer)(scope, receive, send)

        with BackgroundServer(stripping) as relay:
            with HttpBlackBox(relay.url, TOKEN) as box, pytest.raises(IntegrityError, match="untagged"):
                box.features(images)
            with HttpBlackBox(relay.url, TOKEN, allow_untagged=True) as box:  # the caller's explicit choice
                assert box.features(images).authenticated is False


def test_the_client_reports_answers_nested_too_deep_in_one_line():
    from starlette.responses import Response

    async def deep(scope, receive, send):
        await Response("[" * 100_000 + "]" * 100_000, media_type="application/json")(scope, receive, send)

    with BackgroundServer(deep) as server, HttpBlackBox(server.url, TOKEN, retries=0) as box:
        with pytest.raises(ShuffleBitsError, match="not JSON"):
            box.features(make_images(1))
