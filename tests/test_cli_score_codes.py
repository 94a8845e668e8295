"""``skcollapse score --codes``: codebook metrics of a semantic-ID file."""

import json

import numpy as np
import pytest
import torch

from skcollapse.cli import main


def codes_json(capsys, *args):
    code = main(["score", "--codes", *args, "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)["codes"]


def planted():
    """16 items, 2 levels of K=4: level 0 uniform, level 1 one code, so items
    sharing a level-0 code collide in groups of 4."""
    level0 = np.repeat(np.arange(4), 4)
    return np.column_stack([level0, np.zeros(16, dtype=int)])


def test_known_answers_from_npy(tmp_path, capsys):
    np.save(tmp_path / "ids.npy", planted())
    (row,) = codes_json(capsys, str(tmp_path / "ids.npy"), "--codebook-size", "8")
    assert row["name"] == "ids" and row["shape"] == [16, 2]
    assert row["codebook_size"] == 8 and row["codebook_size_inferred"] is False
    assert row["used_codes"] == [4, 1]
    assert row["usage"] == [0.5, 0.125]
    np.testing.assert_allclose(row["perplexity"], [4.0, 1.0])
    assert row["collision_rate"] == 1.0
    assert row["largest_collision_group"] == 4
    assert row["n_unique_ids"] == 4


def test_unique_ids_have_no_collision_and_k_is_inferred(tmp_path, capsys):
    codes = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    np.save(tmp_path / "u.npy", codes.astype(np.int32))
    (row,) = codes_json(capsys, str(tmp_path / "u.npy"))
    assert row["codebook_size"] == 2 and row["codebook_size_inferred"] is True
    assert row["usage"] == [1.0, 1.0] and row["collision_rate"] == 0.0
    assert row["largest_collision_group"] == 1


def test_npz_csv_and_pt_agree(tmp_path, capsys):
    codes = planted()
    np.savez(tmp_path / "ids.npz", rq=codes, vae=codes[::-1])
    np.savetxt(tmp_path / "ids.csv", codes, fmt="%d", delimiter=",")
    torch.save({"ids": torch.from_numpy(codes)}, tmp_path / "ids.pt")
    rows = codes_json(capsys, str(tmp_path / "ids.npz"), "--codebook-size", "4")
    assert [r["name"] for r in rows] == ["rq", "vae"]
    (csv,) = codes_json(capsys, str(tmp_path / "ids.csv"), "--codebook-size", "4")
    (pt,) = codes_json(capsys, str(tmp_path / "ids.pt"), "--codebook-size", "4")
    for row in (*rows, csv, pt):
        assert row["usage"] == [1.0, 0.25]
        assert row["collision_rate"] == 1.0


def test_table_output(tmp_path, capsys):
    np.save(tmp_path / "ids.npy", planted())
    assert main(["score", "--codes", str(tmp_path / "ids.npy")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"source: {tmp_path / 'ids.npy'}"
    assert lines[1].split() == ["table", "level", "K", "used", "usage", "perplexity"]
    assert lines[2].split() == ["ids", "0", "4*", "4", "1.0000", "4.00"]
    assert lines[3].split() == ["1", "4*", "1", "0.2500", "1.00"]
    assert lines[4] == ("ids: 16 items, 2 levels, 4 distinct IDs; collision rate "
                        "1.0000 (16 items share an ID), largest collision group 4")
    assert lines[5].startswith("* K inferred")


def test_embeddings_given_as_codes_are_refused(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "emb.npy", rng.normal(size=(50, 8)))
    assert main(["score", "--codes", str(tmp_path / "emb.npy")]) == 2
    err = capsys.readouterr().err
    assert "non-integer values" in err and "drop --codes" in err
    np.save(tmp_path / "neg.npy", np.array([[0, -1], [1, 2]]))
    assert main(["score", "--codes", str(tmp_path / "neg.npy")]) == 2
    assert "negative value -1" in capsys.readouterr().err


def test_codes_above_the_codebook_size_are_refused(tmp_path, capsys):
    np.save(tmp_path / "ids.npy", planted())
    assert main(["score", "--codes", str(tmp_path / "ids.npy"),
                 "--codebook-size", "3"]) == 2
    assert "outside [0, --codebook-size=3)" in capsys.readouterr().err


@pytest.mark.parametrize("flag", [["--metrics", "erank"], ["--center"],
                                  ["--relative"], ["--row-normalize"]])
def test_embedding_flags_do_not_mix_with_codes(tmp_path, capsys, flag):
    np.save(tmp_path / "ids.npy", planted())
    assert main(["score", "--codes", str(tmp_path / "ids.npy"), *flag]) == 2
    assert "not to --codes" in capsys.readouterr().err


def test_codebook_size_needs_codes_and_codes_needs_a_file(tmp_path, capsys):
    np.save(tmp_path / "ids.npy", planted())
    assert main(["score", str(tmp_path / "ids.npy"), "--codebook-size", "4"]) == 2
    assert "--codes only" in capsys.readouterr().err
    assert main(["score", "--codes"]) == 2
    assert "needs FILE" in capsys.readouterr().err


def test_integer_table_without_codes_is_scored_as_embeddings_with_a_note(
        tmp_path, capsys):
    np.save(tmp_path / "ids.npy", planted())
    assert main(["score", str(tmp_path / "ids.npy"), "--json"]) == 0
    out = capsys.readouterr()
    assert "effective_rank" in json.loads(out.out)["tables"][0]
    assert "add --codes" in out.err
    # signed integers are not taken for codes: no note
    np.save(tmp_path / "signed.npy", planted() - 1)
    assert main(["score", str(tmp_path / "signed.npy"), "--json"]) == 0
    assert capsys.readouterr().err == ""


def test_quantizer_output_round_trip(tmp_path, capsys):
    from skcollapse.datasets import make_collapsed_embeddings
    from skcollapse.quantization import ResidualKMeans, codebook_metrics

    X = make_collapsed_embeddings(300, 8, effective_rank=3, random_state=0)
    rq = ResidualKMeans(n_levels=2, codebook_size=16, random_state=0).fit(X)
    np.save(tmp_path / "ids.npy", rq.transform(X))
    (row,) = codes_json(capsys, str(tmp_path / "ids.npy"), "--codebook-size", "16")
    expected = codebook_metrics(rq, X)
    np.testing.assert_allclose(row["usage"], expected["usage"])
    np.testing.assert_allclose(row["perplexity"], expected["perplexity"])
    assert row["collision_rate"] == pytest.approx(expected["collision_rate"])
    assert row["largest_collision_group"] == expected["largest_collision_group"]
