import errno
import json

import pytest

from dct.train.sinks import JsonLinesSink, TensorBoardSink, write_json_atomically
from tests.full_disk import fill, tiny_disk


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


def test_a_full_disk_leaves_whole_lines_and_names_the_file(tmp_path):
    with tiny_disk(tmp_path / "disk") as disk:
        path = disk / "metrics.jsonl"
        sink = JsonLinesSink(path)
        with pytest.raises(OSError) as raised:
            for step in range(1, 1000):
                sink.write(step, {"train/loss": 0.5, "name": "x" * 100})
        sink.close()
        assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(path)
        lines = path.read_text().splitlines(keepends=True)
        assert [json.loads(line)["step"] for line in lines] == list(range(1, len(lines) + 1))
        assert lines and lines[-1].endswith("\n")


def test_a_full_disk_leaves_no_metrics_json(tmp_path):
    with tiny_disk(tmp_path / "disk") as disk:
        fill(disk)
        with pytest.raises(OSError) as raised:
            write_json_atomically(disk / "metrics.json", {"auc": 0.5})
        assert raised.value.errno == errno.ENOSPC
        assert raised.value.filename == str(disk / "metrics.json")
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]
