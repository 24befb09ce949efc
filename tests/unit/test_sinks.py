import json

from dct.train.sinks import JsonLinesSink, TensorBoardSink, write_json_atomically


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


def test_rewound_json_lines_forget_later_steps_and_a_cut_line(tmp_path):
    """A run resumed from step 20 after a kill: lines past 20, and a line the kill cut short,
    go; what the resumed run writes follows on."""
    path = tmp_path / "m.jsonl"
    sink = JsonLinesSink(path)
    for step in (10, 20, 30):
        sink.write(step, {"train/loss": step / 100})
    sink.close()
    with path.open("a") as file:
        file.write('{"step": 40, "train/lo')
    resumed = JsonLinesSink(path)
    resumed.rewind(20)
    resumed.write(30, {"train/loss": 0.25})
    resumed.close()
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [10, 20, 30]
    assert json.loads(path.read_text().splitlines()[-1])["train/loss"] == 0.25


def test_rewound_tensorboard_purges_later_steps(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sink = TensorBoardSink(tmp_path)
    for step in (10, 20, 30):
        sink.write(step, {"loss": float(step)})
    sink.rewind(20)
    sink.write(30, {"loss": 3.0})
    sink.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("loss")] == [
        (10, 10.0),
        (20, 20.0),
        (30, 3.0),
    ]
