"""delora_viz.training.data: embedded sources, local files, HF names offline, splits and bad input."""

import json
from collections import Counter

import pytest
from builders import write_text_files

from delora_viz.training.data import (
    EMBEDDED_CAUSAL_LM,
    EMBEDDED_CLASSIFICATION,
    TextData,
    describe,
    load_bbc_news,
    load_chatterbot_pairs,
    load_data,
)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_text_files(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def bbc():
    return load_data(None)


def _all_texts(d: TextData) -> list[str]:
    return d.train_texts + d.eval_texts


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


# ---------------------------------------------------------------- embedded


def test_bbc_raw_corpus_has_2225_articles_in_5_topics():
    texts, topics = load_bbc_news()
    assert len(texts) == 2225
    assert sorted(Counter(topics)) == ["business", "entertainment", "politics", "sports", "tech"]
    assert max(map(len, texts)) <= 1000 and min(map(len, texts)) > 100


def test_bbc_is_the_default_and_splits_disjoint_and_stratified(bbc):
    assert EMBEDDED_CLASSIFICATION == "bbc-news"
    assert bbc.task == "classification" and bbc.num_labels == 5
    assert bbc.label_names == ["business", "entertainment", "politics", "sports", "tech"]
    n = len(bbc.train_texts) + len(bbc.eval_texts)
    assert n + bbc.n_duplicates_dropped == 2225 and n > 2100  # exact repeats dropped
    assert not set(bbc.train_texts) & set(bbc.eval_texts)
    assert len(bbc.eval_texts) == round(0.2 * n)
    assert len(bbc.train_labels) == len(bbc.train_texts) and len(bbc.eval_labels) == len(bbc.eval_texts)
    total, ev = Counter(bbc.train_labels + bbc.eval_labels), Counter(bbc.eval_labels)
    for label, count in total.items():
        assert abs(ev[label] / count - 0.2) < 0.01, (label, ev[label], count)


def test_split_is_deterministic_per_seed_and_batches_mix_classes(bbc):
    again = load_data("bbc-news")
    assert again.eval_texts == bbc.eval_texts and again.train_labels == bbc.train_labels
    other = load_data("bbc-news", seed=1)
    assert other.eval_texts != bbc.eval_texts
    assert len(set(bbc.train_labels[:16])) >= 4  # not sorted by class


def test_max_examples_caps_the_total():
    d = load_data("bbc-news", max_examples=100, eval_fraction=0.25)
    assert (len(d.train_texts), len(d.eval_texts)) == (75, 25)
    assert d.num_labels == 5  # label names stay complete


def test_chatterbot_qa_is_the_causal_default():
    assert EMBEDDED_CAUSAL_LM == "chatterbot-qa"
    d = load_data(None, task="causal_lm")
    assert d.task == "causal_lm" and d.train_labels is None and d.label_names is None
    assert d.num_labels is None
    assert len(_all_texts(d)) > 1000
    assert all(t.startswith("Question: ") and "\nAnswer: " in t for t in _all_texts(d))
    assert not set(d.train_texts) & set(d.eval_texts)
    assert all(isinstance(q, str) and isinstance(a, str) for q, a in load_chatterbot_pairs())


def test_chatterbot_for_classification_says_what_to_use():
    with pytest.raises(ValueError, match="causal_lm"):
        load_data("chatterbot-qa", task="classification")


def test_bbc_as_causal_lm_drops_labels():
    d = load_data("bbc-news", task="causal_lm", max_examples=50)
    assert d.train_labels is None and d.label_names is None and len(_all_texts(d)) == 50


# ---------------------------------------------------------------- local files


@pytest.mark.parametrize("kind", ["csv", "json", "jsonl", "json_data"])
def test_labeled_files_load_with_auto_detected_columns(files, kind):
    d = load_data(files[kind])
    assert d.num_labels == 3 and len(_all_texts(d)) == 42
    expected = ["0", "1", "2"] if kind == "jsonl" else ["cooking", "sports", "weather"]
    assert d.label_names == expected
    assert sorted(Counter(d.eval_labels).values()) == [2, 3, 3]  # stratified: 8 of 14 + 14 + 14
    assert any("goal" in t for t in d.train_texts)


def test_txt_is_one_example_per_non_empty_line(files):
    d = load_data(files["txt"], task="causal_lm")
    assert len(_all_texts(d)) == 42 and all(t.endswith(".") for t in _all_texts(d))


def test_question_answer_columns_become_one_text(files):
    d = load_data(files["qa_csv"], task="causal_lm")
    assert all(t.startswith("Question: What is topic") and "\nAnswer: It is about" in t for t in _all_texts(d))


def test_explicit_columns_and_string_int_labels(tmp_path):
    rows = "id,title,body_text,kind\n" + "".join(
        f'{i},t{i},"body {i} about {"cats" if i % 2 else "dogs"}",{i % 2 + 1}\n' for i in range(10)
    )
    path = _write(tmp_path / "x.csv", rows)
    d = load_data(path, text_column="body_text", label_column="kind")
    assert d.label_names == ["1", "2"]  # integers keep numeric order, names are str(int)
    assert all(t.startswith("body ") for t in _all_texts(d))
    with pytest.raises(ValueError, match="title, body_text"):  # auto-detection: two text columns
        load_data(path, label_column="kind")


def test_json_object_of_columns_and_multiline_csv_cells(tmp_path):
    cols = {"text": [f"example {i}" for i in range(8)], "label": ["a", "b"] * 4}
    d = load_data(_write(tmp_path / "cols.json", json.dumps(cols)))
    assert d.label_names == ["a", "b"] and len(_all_texts(d)) == 8
    csv_text = "text,label\n" + "".join(f'"line one {i}\nline two",{i % 2}\n' for i in range(6))
    d = load_data(_write(tmp_path / "multi.csv", csv_text))
    assert all("\nline two" in t for t in _all_texts(d))


def test_rows_with_missing_cells_are_dropped(tmp_path):
    rows = [{"text": f"t{i}", "label": i % 2} for i in range(6)] + [{"text": "", "label": 1}, {"text": "no label"}]
    path = _write(tmp_path / "x.jsonl", "\n".join(json.dumps(r) for r in rows))
    assert len(_all_texts(load_data(path))) == 6


def test_latin1_files_decode(tmp_path):
    path = tmp_path / "l1.txt"
    path.write_bytes("".join(f"prix {i} \xa3 caf\xe9\n" for i in range(5)).encode("latin-1"))
    assert all("café" in t for t in _all_texts(load_data(str(path), task="causal_lm")))


def test_describe_is_one_line(bbc, files):
    line = describe(bbc)
    assert "\n" not in line and "train" in line and "eval" in line and "business" in line
    assert "causal LM" in describe(load_data(files["txt"], task="causal_lm"))


# ---------------------------------------------------------------- bad input


def test_no_text_column_lists_the_columns(files):
    with pytest.raises(ValueError, match=r"name the text column, one of: id, score, label") as err:
        load_data(files["no_text_csv"])
    assert err.value.field == "text_column"  # each front end names its own knob (CLI --text_column)


def test_no_label_column_says_to_pass_one(tmp_path):
    path = _write(tmp_path / "x.csv", "text,stars\n" + "".join(f"t{i},{i}\n" for i in range(6)))
    with pytest.raises(ValueError, match=r"name the label column, one of: text, stars.*task causal_lm") as err:
        load_data(path)
    assert err.value.field == "label_column"


def test_unknown_explicit_column_lists_the_columns(files):
    with pytest.raises(ValueError, match=r"'body'.*text, label"):
        load_data(files["csv"], text_column="body")


def test_txt_for_classification_points_to_csv(files):
    with pytest.raises(ValueError, match=r"\.csv.*label column"):
        load_data(files["txt"])


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_data(str(tmp_path / "nope.csv"))


@pytest.mark.parametrize("fraction", [0, -0.1, 0.95, 1.0, "0.2"])
def test_eval_fraction_out_of_range(files, fraction):
    with pytest.raises(ValueError, match=r"eval_fraction must be in \(0, 0.9\]"):
        load_data(files["csv"], eval_fraction=fraction)


def test_bad_task_and_spec_type(files):
    with pytest.raises(ValueError, match="causal_lm"):
        load_data(files["csv"], task="regression")
    with pytest.raises(TypeError, match="string or path"):
        load_data(42)
    with pytest.raises(ValueError, match="max_examples"):
        load_data(files["csv"], max_examples=2)


def test_too_few_examples_says_how_many(tmp_path):
    path = _write(tmp_path / "x.csv", "text,label\na,0\nb,1\nc,0\n")
    with pytest.raises(ValueError, match="found 3 usable example.*at least 4"):
        load_data(path)
    with pytest.raises(ValueError, match="found 0 examples"):
        load_data(_write(tmp_path / "empty.csv", "text,label\n"))


def test_one_label_says_two_are_needed(tmp_path):
    path = _write(tmp_path / "x.csv", "text,label\n" + "".join(f"t{i},same\n" for i in range(8)))
    with pytest.raises(ValueError, match="1 distinct label.*at least 2"):
        load_data(path)


def test_split_leaving_no_training_data(tmp_path):
    path = _write(tmp_path / "x.csv", "text,label\n" + "".join(f"t{i},{i % 2}\n" for i in range(4)))
    with pytest.raises(ValueError, match="leaves no training examples"):
        load_data(path, eval_fraction=0.9)


def test_regression_labels_and_bad_jsonl(tmp_path):
    path = _write(tmp_path / "x.csv", "text,label\n" + "".join(f"t{i},{i / 3:.3f}\n" for i in range(8)))
    with pytest.raises(ValueError, match="non-integer numbers"):
        load_data(path)
    path = _write(tmp_path / "bad.jsonl", '{"text": "a", "label": 0}\n{not json}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl.*JSON Lines.*JSON parse error.* row 1"):  # rows from 0
        load_data(path)
    with pytest.raises(ValueError, match="unsupported file type"):
        load_data(_write(tmp_path / "x.tsv", "a\tb\n"))


def test_hf_dataset_name_offline_is_a_clear_error():
    with pytest.raises(ValueError, match=r"'imdb' is not available offline.*\.csv") as info:
        load_data("imdb")
    assert info.value.__cause__ is not None  # the datasets error is chained for debugging
    with pytest.raises(ValueError, match="not available offline"):
        load_data("glue:sst2@train[:100]")


def _fake_hub(monkeypatch, splits: dict, calls: list):
    """datasets.load_dataset replaced by in-memory splits (no network); streaming returns IterableDatasets."""
    import datasets

    def fake_load(name, config=None, split=None, streaming=False):
        calls.append((name, config, split, streaming))
        dd = {k: v.to_iterable_dataset() if streaming else v for k, v in splits.items()}
        dd = (datasets.IterableDatasetDict if streaming else datasets.DatasetDict)(dd)
        return dd[split] if split else dd

    monkeypatch.setattr(datasets, "load_dataset", fake_load)


def test_hf_dataset_class_labels_streaming_cap_and_own_split(monkeypatch):
    import datasets

    feats = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    make = lambda texts, labels: datasets.Dataset.from_dict({"sentence": texts, "label": labels}, features=feats)  # noqa: E731
    train = make([f"s{i}" for i in range(20)], [i % 2 for i in range(20)])
    test = make(["u1", "u2"], [-1, -1])  # GLUE's test split: no labels
    validation = make(["v1", "v2", "v3", "s0"], [1, 1, 0, 0])  # "s0" is also in train: dropped
    calls = []
    _fake_hub(monkeypatch, {"train": train, "test": test, "validation": validation}, calls)
    d = load_data("org/sst:default", max_examples=10)
    assert calls[-1] == ("org/sst", "default", None, True)  # capped: streamed
    assert d.label_names == ["neg", "pos"] and len(d.train_texts) == 10 and d.name == "org/sst:default"
    assert d.eval_split == "validation" and set(d.eval_texts) <= {"v1", "v2", "v3", "s0"}
    assert "its validation split" in describe(d)
    d = load_data("org/sst")
    assert calls[-1] == ("org/sst", None, None, False) and len(d.train_texts) == 20
    assert d.eval_texts == ["v1", "v2", "v3"] and d.eval_labels == [1, 1, 0] and d.n_duplicates_dropped == 1
    with pytest.raises(ValueError, match="found 0 usable"):  # -1 marks unlabeled rows: all dropped
        load_data("org/sst@test")
    assert calls[-1] == ("org/sst", None, "test", False)


def test_a_capped_stream_reads_only_a_buffer_of_rows():
    import datasets

    from delora_viz.training.readers import STREAM_BUFFER, columns_of

    read = []

    def rows():
        for i in range(10 * STREAM_BUFFER):
            read.append(i)
            yield {"text": f"row {i}"}

    columns, _ = columns_of(datasets.IterableDataset.from_generator(rows), max_examples=5, seed=0)
    assert len(columns["text"]) == 5 and len(read) <= STREAM_BUFFER + 100


def test_a_dataset_folder_uses_its_test_split(tmp_path):
    """What PEFT's delora_finetuning.py reads: load_dataset(folder) with train and test files."""
    folder = tmp_path / "qa"
    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(json.dumps({"text": f"train text {i}"}) + "\n" for i in range(12)))
    (folder / "test.jsonl").write_text("".join(json.dumps({"text": f"test text {i}"}) + "\n" for i in range(3)))
    d = load_data(str(folder), task="causal_lm", eval_size=2)  # eval_size: only for a held-out share
    assert d.eval_split == "test" and d.eval_texts == [f"test text {i}" for i in range(3)]
    assert sorted(d.train_texts) == sorted(f"train text {i}" for i in range(12))


def test_labels_are_encoded_once_across_splits(tmp_path):
    folder = tmp_path / "cls"
    folder.mkdir()
    rows = [{"text": f"t{i}", "label": ["b", "c", "a"][i % 3]} for i in range(9)]
    (folder / "train.csv").write_text("text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in rows))
    (folder / "test.csv").write_text("text,label\nu1,c\nu2,c\n")  # one class only: still id 2
    d = load_data(str(folder))
    assert d.label_names == ["a", "b", "c"] and d.eval_labels == [2, 2] and d.eval_split == "test"


def test_eval_size_caps_the_held_out_share(files):
    assert len(load_data(files["csv"], eval_size=3).eval_texts) == 3
    assert len(load_data(files["csv"], eval_size=100).eval_texts) == round(0.2 * 42)  # at most eval_fraction
