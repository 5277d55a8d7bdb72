"""`shufflebits reid` on a CKKS gallery: release modes and encrypted query files, checked against numpy."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tenseal")

from shufflebits.ciphers import ckks
from shufflebits.ciphers.ckks_files import load_key, load_query
from shufflebits.cli import build_parser, main
from shufflebits.errors import IntegrityError, WrongKeyError
from shufflebits.features import save_features

DIM = 16
SEED = 25  # its numpy scores are at least 2e-3 apart in every query's row (asserted), 20x the CKKS noise


def numpy_scores(query: np.ndarray, gallery: np.ndarray, metric: str) -> np.ndarray:
    """The scores the key holder decrypts, computed in the clear (ckks module docstring)."""
    if metric == "cosine":
        unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
        return unit(query) @ unit(gallery).T
    s = np.linalg.norm(gallery, axis=1).max()
    q, g = query / s, gallery / s
    a = 1 / np.maximum(np.linalg.norm(q, axis=1), 1)
    return a[:, None] * (2 * q @ g.T - (g**2).sum(1))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Plaintext query and gallery, one key, a euclidean and a cosine CKKS gallery and an encrypted query."""
    root = tmp_path_factory.mktemp("ckks-cli")
    rng = np.random.default_rng(SEED)
    centres = rng.standard_normal((6, DIM))
    gallery = np.repeat(centres, 2, axis=0) + 0.5 * rng.standard_normal((12, DIM))
    query = centres[:4] + 0.5 * rng.standard_normal((4, DIM))
    for metric in ("euclidean", "cosine"):
        gaps = np.diff(np.sort(numpy_scores(query, gallery, metric), axis=1), axis=1)
        assert gaps.min() > 2e-3, metric  # no near ties: CKKS noise (~1e-4) cannot swap two ranks
    paths = {name: root / f"{name}.npz" for name in ("q", "g", "unlabelled", "key", "other", "eg", "cg", "eq")}
    save_features(paths["q"], query.astype(np.float32), pids=np.arange(4), camids=np.zeros(4))
    save_features(paths["g"], gallery.astype(np.float32), pids=np.repeat(np.arange(6), 2), camids=np.ones(12))
    save_features(paths["unlabelled"], query.astype(np.float32))
    for name in ("key", "other"):
        assert main(["ckks-keygen", "--out", str(paths[name])]) == 0
    for name, metric in (("eg", "euclidean"), ("cg", "cosine")):
        command = ["ckks-encrypt", "--key", str(paths["key"]), "--features", str(paths["g"]), "--metric", metric]
        assert main([*command, "--out", str(paths[name])]) == 0
    command = ["ckks-encrypt-query", "--key", str(paths["key"]), "--features", str(paths["q"])]
    assert main([*command, "--gallery", str(paths["eg"]), "--out", str(paths["eq"])]) == 0
    return paths, query.astype(np.float32).astype(np.float64), gallery.astype(np.float32).astype(np.float64)


def reid(paths, *extra, query="q", gallery="eg"):
    return main(["reid", "--query", str(paths[query]), "--gallery", str(paths[gallery]), "--key", str(paths["key"]),
                 *map(str, extra)])  # fmt: skip


def released(paths, tmp_path, *extra, **roles) -> dict:
    assert reid(paths, *extra, "--out", tmp_path / "r.json", **roles) == 0
    return json.loads((tmp_path / "r.json").read_text())


def test_encrypted_query_ranks_equal_the_plaintext_querys_and_numpys(files, tmp_path):
    paths, query, gallery = files
    expected = np.argsort(-numpy_scores(query, gallery, "euclidean"), axis=1)
    plain = released(paths, tmp_path, "--top-k", 12)
    hidden = released(paths, tmp_path, "--top-k", 12, query="eq")
    assert plain["ids"] == hidden["ids"] == expected.tolist()
    assert np.array_equal(expected[:, 0], (((query[:, None] - gallery[None]) ** 2).sum(-1)).argmin(1))
    encrypted, _ = load_query(paths["eq"])
    assert encrypted.count == 4 and all(len(row) == -(-(DIM + 1) // 2) for row in encrypted.weights)


def test_encrypt_query_rows_keeps_the_first_queries_with_their_labels(files, tmp_path, capsys):
    paths, query, gallery = files
    first = tmp_path / "first.npz"
    command = ["ckks-encrypt-query", "--key", str(paths["key"]), "--features", str(paths["q"]), "--gallery"]
    assert main([*command, str(paths["eg"]), "--rows", "2", "--out", str(first)]) == 0
    encrypted, labels = load_query(first)
    assert encrypted.count == 2 and list(labels["pids"]) == [0, 1]
    expected = np.argsort(-numpy_scores(query[:2], gallery, "euclidean"), axis=1)
    assert released({**paths, "first": first}, tmp_path, "--top-k", 12, query="first")["ids"] == expected.tolist()
    assert main([*command, str(paths["eg"]), "--rows", "0", "--out", str(tmp_path / "none.npz")]) == 2
    assert "--rows must be at least 1" in capsys.readouterr().err and not (tmp_path / "none.npz").exists()


def test_the_default_release_is_top_1_ids_and_top_k_writes_k(files, tmp_path):
    paths, query, gallery = files
    expected = np.argsort(-numpy_scores(query, gallery, "euclidean"), axis=1)
    default = released(paths, tmp_path)
    assert default["mode"] == "top-k" and default["top_k"] == ckks.TOP_K == 1 and "scores" not in default
    assert default["ids"] == expected[:, :1].tolist()
    three = released(paths, tmp_path, "--top-k", 3, query="eq")
    assert three["ids"] == expected[:, :3].tolist() and "scores" not in three


def test_threshold_releases_only_the_top_k_ids_that_pass_it(files, tmp_path):
    paths, query, gallery = files
    scores = numpy_scores(query, gallery, "cosine")
    top = np.argsort(-scores, axis=1)[:, :5]
    best = np.sort(scores[0])[::-1]
    threshold = float((best[1] + best[2]) / 2)  # query 0: two ids pass; the gaps keep every score 1e-3 from it
    document = released(paths, tmp_path, "--top-k", 5, "--threshold", threshold, gallery="cg")
    expected = np.where(np.take_along_axis(scores, top, axis=1) >= threshold, top, -1)
    assert document["mode"] == "threshold" and document["ids"] == expected.tolist()
    assert (np.asarray(document["ids"][0]) >= 0).sum() == 2 and "scores" not in document


@pytest.mark.parametrize("gallery", ["eg", "cg"])
def test_reveal_scores_releases_scores_within_1e_3_of_numpy(files, tmp_path, gallery):
    paths, query, plain_gallery = files
    document = released(paths, tmp_path, "--reveal-scores", gallery=gallery)
    metric = "euclidean" if gallery == "eg" else "cosine"
    assert document["mode"] == "reveal-scores" and "ids" not in document
    np.testing.assert_allclose(document["scores"], numpy_scores(query, plain_gallery, metric), atol=1e-3)


def test_figures_come_from_the_key_holders_full_ranking_whatever_is_released(files, tmp_path, capsys):
    paths, _, _ = files
    capsys.readouterr()
    assert reid(paths, "--json") == 0
    nothing = json.loads(capsys.readouterr().out)
    assert nothing["release"] == {"mode": "top-k", "top_k": 1, "threshold": None, "out": None}
    assert reid(paths, "--json", "--out", tmp_path / "r.json", query="eq") == 0
    out = capsys.readouterr()
    figures = json.loads(out.out)
    assert figures["release"]["out"] == str(tmp_path / "r.json") and "the top 1 gallery row ids" in out.err
    assert {k: figures[k] for k in ("rank1", "mAP", "mINP")} == {k: nothing[k] for k in ("rank1", "mAP", "mINP")}
    assert figures["rank1"] == 1.0  # every query's nearest template is its own identity (numpy's argmin above)


def test_unlabelled_queries_can_still_be_released(files, tmp_path, capsys):
    paths, query, gallery = files
    capsys.readouterr()
    document = released(paths, tmp_path, query="unlabelled")
    assert capsys.readouterr().out == ""
    assert document["ids"] == np.argsort(-numpy_scores(query, gallery, "euclidean"), axis=1)[:, :1].tolist()
    assert reid(paths, query="unlabelled") == 2  # without --out it has nothing to show


def test_help_marks_reveal_scores_insecure_and_names_the_default():
    text = build_parser()._subparsers._group_actions[0].choices["reid"].format_help()
    assert "INSECURE" in text.split("--reveal-scores")[-1] and f"(default: {ckks.TOP_K}" in text


def one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("shufflebits: error: "), err
    return err


@pytest.mark.parametrize(
    ("extra", "gallery", "message"),
    [
        (["--top-k", 0], "eg", "--top-k must be at least 1"),
        (["--top-k", 2, "--reveal-scores"], "eg", "nothing to cut"),
        (["--threshold", 0.5, "--reveal-scores"], "cg", "nothing to cut"),
        (["--threshold", "nan"], "cg", "cosine similarity in [-1, 1]"),
        (["--threshold", "inf"], "cg", "cosine similarity in [-1, 1]"),
        (["--threshold", 0.5], "eg", "needs a cosine gallery"),
        (["--out", "r.txt"], "eg", "ends in .json"),
        (["--top-k", 1], "g", "only for a CKKS --gallery"),
    ],
)
def test_bad_release_options_are_one_line_errors(files, tmp_path, capsys, extra, gallery, message):
    paths, _, _ = files
    extra = [tmp_path / value if value == "r.txt" else value for value in extra]
    assert message in one_line_error(capsys, reid(paths, *extra, gallery=gallery))
    assert not list(tmp_path.iterdir())  # nothing released


def test_a_query_under_another_key_or_damaged_is_refused_in_one_line(files, tmp_path, capsys):
    paths, _, _ = files
    other = tmp_path / "other-g.npz"
    command = ["--key", str(paths["other"]), "--features", str(paths["g"])]
    assert main(["ckks-encrypt", *command, "--out", str(other)]) == 0
    foreign = tmp_path / "other-q.npz"
    command = ["--key", str(paths["other"]), "--features", str(paths["q"]), "--gallery", str(other)]
    assert main(["ckks-encrypt-query", *command, "--out", str(foreign)]) == 0
    capsys.readouterr()
    paths = {**paths, "foreign": foreign}
    assert "different CKKS keys" in one_line_error(capsys, reid(paths, query="foreign"))
    with pytest.raises(WrongKeyError, match="wrong key"):
        load_query(foreign, ckks.generate_key())
    command = ["ckks-encrypt-query", "--key", str(paths["other"]), "--features", str(paths["q"])]
    code = main([*command, "--gallery", str(paths["eg"]), "--out", str(tmp_path / "x.npz")])
    assert "wrong key" in one_line_error(capsys, code)  # the key holder encrypts only for its own gallery
    raw = bytearray(paths["eq"].read_bytes())
    raw[len(raw) // 2] ^= 1
    (tmp_path / "bad.npz").write_bytes(bytes(raw))
    assert "cannot read" in one_line_error(capsys, reid({**paths, "bad": tmp_path / "bad.npz"}, query="bad"))
    assert "is a shufflebits-ckks-query file" in one_line_error(capsys, reid(paths, query="eq", gallery="g"))
    assert "is a CKKS gallery" in one_line_error(capsys, reid(paths, query="cg"))


def test_an_edited_query_file_is_caught_in_one_line(files, tmp_path, capsys):
    """Members edited in a still valid zip: the key holder's tag catches them; an old version is refused."""
    paths, _, _ = files
    with np.load(paths["eq"]) as archive:
        arrays = {name: archive[name] for name in archive.files}
    np.savez(tmp_path / "relabelled.npz", **{**arrays, "pids": arrays["pids"][::-1]})
    with pytest.raises(IntegrityError, match="authentication failed"):
        load_query(tmp_path / "relabelled.npz", load_key(paths["key"]))
    code = reid({**paths, "x": tmp_path / "relabelled.npz"}, query="x")
    assert "authentication failed" in one_line_error(capsys, code)
    header = json.loads(arrays["header"].tobytes())
    old = np.frombuffer(json.dumps({**header, "version": 1}).encode(), np.uint8)
    np.savez(tmp_path / "old.npz", **{**arrays, "header": old})
    code = reid({**paths, "x": tmp_path / "old.npz"}, query="x")
    assert "unsupported shufflebits-ckks-query version 1" in one_line_error(capsys, code)


def test_encrypting_refuses_to_replace_an_input_or_an_existing_file_without_force(files, tmp_path, capsys):
    paths, _, _ = files
    query = ["ckks-encrypt-query", "--key", str(paths["key"]), "--features", str(paths["q"])]
    before = paths["eg"].read_bytes()
    for forced in ([], ["--force"]):  # never the gallery it was made for
        code = main([*query, "--gallery", str(paths["eg"]), "--out", str(paths["eg"]), *forced])
        assert "is one of the inputs" in one_line_error(capsys, code)
    assert paths["eg"].read_bytes() == before
    out = tmp_path / "q.ckks.npz"
    out.write_bytes(b"keep me")
    assert "pass --force" in one_line_error(capsys, main([*query, "--gallery", str(paths["eg"]), "--out", str(out)]))
    assert out.read_bytes() == b"keep me"
    assert main([*query, "--gallery", str(paths["eg"]), "--out", str(out), "--force"]) == 0
    assert load_query(out)[0].count == 4
    gallery = ["ckks-encrypt", "--key", str(paths["key"]), "--features", str(paths["g"]), "--out"]
    assert "pass --force" in one_line_error(capsys, main([*gallery, str(paths["cg"])]))
