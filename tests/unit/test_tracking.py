import csv
import struct

from tensorboardX.proto.event_pb2 import Event

from cot_ray.tracking import MetricsLog, Tracker, rows_up_to


def _scalars(logdir):
    """(tag, step, value) of every scalar in the event files (TFRecord: length, crc, data, crc)."""
    out = []
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = Event.FromString(data[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            out += [(v.tag, event.step, v.simple_value) for v in event.summary.value]
    return out


def test_tracker_writes_finite_numbers_tensorboard_reads(tmp_path):
    tracker = Tracker(tmp_path / "tb")
    tracker.log(1, {"loss": 2.5, "lr": 0.001, "e_plus": None, "note": "x", "bad": float("nan"), "ok": True})
    tracker.log(2, {"loss": 1.5})
    tracker.close()
    scalars = _scalars(tmp_path / "tb")
    assert ("loss", 1, 2.5) in scalars and ("loss", 2, 1.5) in scalars
    assert {tag for tag, _, _ in scalars} == {"loss", "lr"}


def test_a_resumed_metrics_log_keeps_whole_rows_up_to_its_step_and_appends(tmp_path):
    log = MetricsLog(tmp_path, ["step", "loss"], 0)
    for step in (1, 2, 3):
        log.log(step, {"step": step, "loss": 1.0 / step})
    log.close()
    with open(tmp_path / "metrics.csv", "a") as f:
        f.write("1")  # a crash mid-row (of step 10, say): the row is cut short
    assert rows_up_to(tmp_path / "metrics.csv", 9) == [["1", "1"], ["2", "0.5"], ["3", "0.33333"]]
    log = MetricsLog(tmp_path, ["step", "loss"], 2)  # resumed from the checkpoint at step 2
    log.log(3, {"step": 3, "loss": 0.25})
    log.close()
    with open(tmp_path / "metrics.csv", newline="") as f:
        assert list(csv.reader(f)) == [["step", "loss"], ["1", "1"], ["2", "0.5"], ["3", "0.25"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv", "tensorboard"]
