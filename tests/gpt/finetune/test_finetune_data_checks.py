"""Fine-tuning data files are untrusted: wrong types, nulls, undecodable bytes and impossible counts give one
line naming the file, the entry or line, and the field (issue 15, items 6 and low)."""
import json
import os

import pytest

from gpt.cli import finetune as cli

from gpt.finetune import data_classify, data_instruct, make_data


@pytest.mark.parametrize("entry,where", [
    ({"instruction": None, "output": "x"}, "entry 1: 'instruction' must be a string, not null"),
    ({"instruction": "x", "output": 3}, "entry 1: 'output' must be a string, not 3"),
    ({"instruction": "x", "output": "y", "input": None}, "entry 1: 'input' must be a string, not null"),
    ({"instruction": "x", "output": "y", "kind": ["a"]}, "entry 1: 'kind' must be a string"),
    ({"output": "y"}, "entry 1 has no 'instruction'"),
    ("just text", "entry 1 is \"just text\", not an object"),
])
def test_instruct_entries_with_wrong_types_are_named(tmp_path, capsys, entry, where):
    path = tmp_path / "data.json"
    path.write_text(json.dumps([{"instruction": "a", "output": "b"}, entry]), encoding="utf-8")
    with pytest.raises(ValueError, match=str(path)) as info:
        data_instruct.load_entries(path)
    assert where in str(info.value)
    rc = cli.main(["finetune", "instruct", "--data", str(path), "--init", str(tmp_path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and where in err and len(err.strip().splitlines()) == 1, err


def test_a_tsv_that_is_not_utf8_names_the_file(tmp_path, capsys):
    path = tmp_path / "latin1.tsv"
    path.write_bytes("doc\tcaf\u00e9\ncomment\tx\n".encode("latin-1"))
    with pytest.raises(ValueError, match=f"{path} is not UTF-8 text"):
        data_classify.read_labeled(path)
    rc = cli.main(["finetune", "classify", "--data", str(path), "--init", str(tmp_path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and str(path) in err and len(err.strip().splitlines()) == 1, err


def test_labelled_rows_without_a_label_or_columns_are_named(tmp_path):
    tsv = tmp_path / "d.tsv"
    tsv.write_text("doc\thello\n\tno label\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"d\.tsv:2: the label .* is empty"):
        data_classify.read_labeled(tsv)
    csv = tmp_path / "d.csv"
    csv.write_text("label,text\ndoc,hello\ncomment\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"d\.csv: row 3 has 1 columns"):
        data_classify.read_labeled(csv)


@pytest.mark.parametrize("reader", [data_classify.read_labeled, data_instruct.load_entries])
def test_data_files_must_be_regular_files(tmp_path, reader):
    fifo = tmp_path / "pipe.tsv"
    os.mkfifo(fifo)
    for path in (fifo, "/dev/zero"):
        with pytest.raises(ValueError, match="not a regular file"):
            reader(path)


def test_make_data_refuses_more_lines_per_class_than_exist(tmp_path, capsys):
    out = tmp_path / "c.tsv"
    rc = cli.main(["make-data", "classify", "--out", str(out), "--n-per-class", "100000"])
    err = capsys.readouterr().err
    assert rc == 2 and "--n-per-class can be at most" in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()
    most = min(len(set(make_data._doc_lines())), len(set(make_data._code_lines())))
    rows = make_data.make_classify(most, seed=0)
    assert sum(label == "doc" for label, _ in rows) == sum(label == "code" for label, _ in rows) == most
