import json

from dct.train.sinks import JsonLinesSink, write_json_atomically


def test_json_lines_sink_appends_one_object_per_write(tmp_path):
    sink = JsonLinesSink(tmp_path / "m.jsonl")
    sink.write(1, {"train/loss": 0.5})
    sink.write(2, {"eval/auc": 0.7})
    sink.close()
    lines = (tmp_path / "m.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"step": 1, "train/loss": 0.5},
        {"step": 2, "eval/auc": 0.7},
    ]


def test_atomic_json_replaces_whole_file_and_leaves_no_partial(tmp_path):
    target = tmp_path / "metrics.json"
    write_json_atomically(target, {"auc": 0.5, "steps": 1})
    write_json_atomically(target, {"auc": 0.75})
    assert json.loads(target.read_text()) == {"auc": 0.75}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
