import struct

from tensorboardX.proto.event_pb2 import Event

from cot_ray.tracking import Tracker


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
