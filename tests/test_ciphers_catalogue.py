"""The cipher catalogue: every entry's declared properties hold for the class it names,
and nothing outside the catalogue decides by comparing cipher names."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import numpy as np
import pytest

import shufflebits.ciphers as ciphers
from shufflebits.ciphers import Cipher, Key, Sealed, cipher_for_key, cipher_names, create_cipher, spec
from shufflebits.ciphers.catalogue import SPECS
from shufflebits.ciphers.hazmat import experiment_nonces
from shufflebits.errors import IntegrityError, ShuffleBitsError

SRC = Path(ciphers.__file__).resolve().parents[1]
NAMES = cipher_names()
ROWS = cipher_names(homomorphic=False)  # a Cipher over a Key, rows to Sealed; ckks: test_ckks.py


def sample(n: int = 6, d: int = 16) -> np.ndarray:
    """Plaintext words ``(n, d)`` with every column constant, so permutation structure shows."""
    column = np.random.default_rng(4).integers(0, 2**32, d, dtype=np.uint32)
    return np.tile(column, (n, 1)).view(np.float32)


def experiment(name: str):
    key = Key(name, hashlib.sha256(f"tests/catalogue/{name}".encode()).digest())
    return spec(name).resolve()(key, nonce_source=experiment_nonces(1))


def finite_sample(n: int = 6, d: int = 16) -> np.ndarray:
    """``sample``'s constant columns with finite values: what the float-valued (searchable) ciphers take."""
    column = np.random.default_rng(4).normal(size=d).astype(np.float32)
    return np.tile(column, (n, 1))


def sample_for(name: str) -> np.ndarray:
    return sample() if spec(name).exact else finite_sample()


def popcounts(words: np.ndarray) -> np.ndarray:
    return np.unpackbits(words.view(np.uint8).reshape(*words.shape, -1), axis=-1).sum(axis=-1)


def test_names_order_and_filters():
    assert NAMES == (
        "shufflebits",
        "shufflebits-dim",
        "shufflebits-otp",
        "chacha20",
        "aes-gcm",
        "dcpe",
        "dcpe-shuffle",
        "rotation",
        "biohash",
        "ckks",
    )
    assert NAMES == tuple(s.name for s in sorted(SPECS, key=lambda s: s.order))
    assert cipher_names(format_preserving=False) == ("aes-gcm", "biohash", "ckks")
    assert cipher_names(matchable=True) == ("dcpe", "dcpe-shuffle", "rotation", "biohash", "ckks")
    assert cipher_names(exact=True) == NAMES[:5] and cipher_names(invertible=False) == ("biohash",)
    assert cipher_names(homomorphic=True) == ("ckks",) and ROWS == NAMES[:-1]
    assert cipher_names(family="shufflebits", permutation="per-dimension") == ("shufflebits-dim",)
    assert cipher_names(seed_keys=True) == ("shufflebits",)
    with pytest.raises(ValueError, match="no field"):
        cipher_names(colour="blue")
    with pytest.raises(ShuffleBitsError, match="unknown cipher 'des'; expected one of shufflebits, shufflebits-dim"):
        spec("des")


@pytest.mark.parametrize("name", ROWS)
def test_every_spec_resolves_to_a_cipher_honouring_its_entry(name):
    record = spec(name)
    cipher_class = record.resolve()
    assert issubclass(cipher_class, Cipher)
    cipher = experiment(name)
    assert cipher.name == name and cipher.key.mode == record.mode
    assert len(create_cipher(name).key.material) == record.key_bytes
    assert type(cipher_for_key(cipher.key)) is cipher_class
    x = sample_for(name)
    sealed = cipher.encrypt(x)
    n, d = x.shape
    if record.invertible:
        assert sealed.shape == x.shape and sealed.words().shape == x.shape
    else:  # one-way (BioHash): rows of hash bits, as many plaintext-sized words as they fill
        assert sealed.shape == sealed.words().shape and sealed.shape[0] == n
    if record.format_preserving:
        assert sealed.data.shape == x.shape and sealed.data.dtype == x.dtype
    else:
        width = 4 * d if record.invertible else 4 * sealed.shape[1]
        assert sealed.data.dtype == np.uint8 and sealed.data.shape == (n, width + record.tag_bytes)
    if record.nonce_bytes:
        assert sealed.nonces.dtype == np.uint8 and sealed.nonces.shape == (n, record.nonce_bytes)
    else:
        assert sealed.nonces is None
    if record.exact:
        assert record.invertible and cipher.decrypt(sealed).tobytes() == x.tobytes()
    elif record.invertible:  # float rounding (and noise where the scheme adds it) only
        np.testing.assert_allclose(cipher.decrypt(sealed), x, atol=1e-5)
    else:
        with pytest.raises(ShuffleBitsError, match="cannot be decrypted"):
            cipher.decrypt(sealed)
    again = cipher.encrypt(x)
    assert np.array_equal(again.words(), sealed.words()) == (record.nonce_bytes == 0)


@pytest.mark.parametrize("name", ROWS)
def test_authenticated_entries_and_only_those_reject_a_flipped_bit(name):
    cipher = experiment(name)
    x = sample_for(name)
    sealed = cipher.encrypt(x)
    flipped = sealed.payload().copy()
    flipped.reshape(-1).view(np.uint8)[5] ^= 1
    tampered = Sealed.from_words(
        flipped, cipher=name, key_fingerprint=sealed.key_fingerprint, dtype=sealed.dtype, nonces=sealed.nonces
    )
    if spec(name).authenticated:
        with pytest.raises(IntegrityError):
            cipher.decrypt(tampered)
    elif not spec(name).invertible:
        assert not np.array_equal(tampered.words(), sealed.words())
    else:  # no integrity of its own (encrypted files add an HMAC): the change goes through
        assert cipher.decrypt(tampered).tobytes() != x.tobytes()


@pytest.mark.parametrize("name", ROWS)
def test_permutation_field_matches_what_the_ciphertext_shows(name):
    """Bit permutations keep popcounts; "fixed" maps equal values to equal words everywhere,
    "per-dimension" only within a column, "per-element" nowhere; None is no permutation at all."""
    permutation = spec(name).permutation
    x = sample()
    words = experiment(name).encrypt(x).words()
    plain = x.view(np.uint32)
    keeps_popcounts = np.array_equal(popcounts(words), popcounts(plain))
    assert keeps_popcounts == (permutation is not None)
    rows_equal = all(np.array_equal(words[0], row) for row in words)
    if spec(name).exact:  # float-valued ciphers are matrix products: BLAS rounds equal rows differently
        assert rows_equal == (permutation in ("fixed", "per-dimension"))
    if permutation is not None:
        same_value = np.full((1, 8), plain[0, 0], np.uint32).view(np.float32)
        spread = len(set(experiment(name).encrypt(same_value).words()[0].tolist()))
        assert (spread == 1) == (permutation == "fixed")


def test_only_catalogued_classes_accept_a_key():
    for name in ROWS:
        for other in ROWS:
            if spec(other).resolve() is spec(name).resolve():
                continue
            with pytest.raises(ShuffleBitsError, match="cannot be used"):
                spec(other).resolve()(create_cipher(name).key)


def _cipher_name_comparisons(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, name) of every cipher-name literal in a comparison or ``case`` pattern."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
        elif isinstance(node, ast.MatchValue):
            operands = [node.value]
        else:
            continue
        for operand in operands:
            for leaf in ast.walk(operand):
                if isinstance(leaf, ast.Constant) and leaf.value in NAMES:
                    found.append((node.lineno, leaf.value))
    return found


def test_the_detector_finds_name_comparisons():
    code = 'if cipher == "aes-gcm": pass\nok = name in ("chacha20", "x")\nmatch m:\n    case "shufflebits": pass\n'
    assert [n for _, n in _cipher_name_comparisons(ast.parse(code))] == ["aes-gcm", "chacha20", "shufflebits"]
    assert _cipher_name_comparisons(ast.parse('key = generate_key("aes-gcm")\nok = x == "aes"')) == []


def test_no_cipher_name_comparisons_outside_the_catalogue():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "catalogue.py" and path.parent.name == "ciphers":
            continue
        for line, name in _cipher_name_comparisons(ast.parse(path.read_text(), str(path))):
            offenders.append(f"{path.relative_to(SRC)}:{line} compares with {name!r}")
    assert offenders == [], "decide by catalogue field (spec(name).format_preserving, ...), not by name"


def _hazmat_imports(path: Path) -> list[tuple[str, str]]:
    """(enclosing function or '<module>', module) for each import of ciphers.hazmat / ciphers.decrepit."""
    found = []

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else where
            if isinstance(child, ast.ImportFrom):
                names = [child.module or "", *(f"{child.module or ''}.{a.name}" for a in child.names)]
            elif isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            else:
                names = []
            found.extend((where, n) for n in names if n.split(".")[-1] in ("hazmat", "decrepit"))
            visit(child, inner)

    visit(ast.parse(path.read_text()), "<module>")
    return found


def test_deployment_paths_never_import_hazmat_or_decrepit():
    paths = [SRC / "nn.py", *sorted((SRC / "service").glob("*.py")), *sorted((SRC / "cli").glob("*.py"))]
    found = {f"{p.relative_to(SRC)}:{where}" for p in paths for where, _ in _hazmat_imports(p)}
    assert found == {"cli/crypto.py:keygen_command"}  # `keygen --seed` writes the paper's seed key
    assert _hazmat_imports(SRC / "ciphers" / "shufflebits.py")  # the detector sees from_seed's import


def test_insecure_helpers_are_not_in_the_public_namespace():
    public = set(ciphers.__all__)
    assert not public & {"experiment_nonces", "experiment_cipher", "seed_key", "paper_permutation"}
    from shufflebits.ciphers.decrepit import paper_permutation, seed_key

    key = seed_key(0)
    assert key.insecure and key.cipher in cipher_names(seed_keys=True)
    assert paper_permutation(0, 32).tolist()[:6] == [2, 11, 25, 21, 10, 4]  # the README's seed-0 permutation
