"""Several videos in a single-video format: one file for one video, a zip of one member per video."""
from __future__ import annotations

import zipfile

import formats
from formats import Annotation, VideoInfo

VIDEOS = [VideoInfo(640, 480, 30, 30.0, "street-a", "a"), VideoInfo(640, 480, 30, 30.0, "street-b", "b")]


def _records(video: VideoInfo, shift: float) -> list[Annotation]:
    return [Annotation(f, "pedestrian", (10.0 + shift + f, 20.0, 50.0 + shift + f, 90.0), track_id=1,
                       video_id=video.video_id) for f in range(3)]


def _boxes(records) -> list[tuple]:
    return [(r.frame_number, r.track_id, tuple(round(c, 3) for c in r.box)) for r in records]


class Closing:
    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    def __call__(self, frame: int) -> bytes | None:
        return None

    def close(self) -> None:
        self.log.append(self.name)


def test_one_video_is_its_own_file(tmp_path):
    dest = tmp_path / "one.zip"
    n = formats.write_per_video("mot", dest, [(VIDEOS[0], lambda: _records(VIDEOS[0], 0.0), None)],
                                classes=["pedestrian"])
    assert n == 3
    got = formats.open_reader("mot", dest, video=VIDEOS[0], classes=["pedestrian"])
    assert _boxes(got) == _boxes(_records(VIDEOS[0], 0.0))


def test_several_videos_are_members_named_after_them_each_made_when_written(tmp_path):
    dest = tmp_path / "many.zip"
    made: list[str] = []

    def records(video: VideoInfo, shift: float):
        def make():
            made.append(video.name)
            return iter(_records(video, shift))
        return make

    closed: list[str] = []
    entries = [(v, records(v, 100.0 * i), lambda v=v: Closing(closed, v.name)) for i, v in enumerate(VIDEOS)]
    n = formats.write_per_video("cvat_video", dest, entries, classes=["pedestrian"])
    assert n == 6 and made == ["street-a", "street-b"] and closed == ["street-a", "street-b"]
    with zipfile.ZipFile(dest) as zf:
        assert sorted(zf.namelist()) == ["street-a.xml", "street-b.xml"]
        for i, video in enumerate(VIDEOS):
            member = tmp_path / f"{video.name}.xml"
            member.write_bytes(zf.read(member.name))
            got = formats.open_reader("cvat_video", member, video=video, classes=["pedestrian"])
            assert _boxes(r for r in got if not r.outside) == _boxes(_records(video, 100.0 * i))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many.zip", "street-a.xml", "street-b.xml"]
