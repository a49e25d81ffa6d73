"""Hostile uploads are refused without harm, with a clear reason."""
from __future__ import annotations

import zipfile

import pytest

import formats
from formats import FormatError, Limits, ReadOptions, VideoInfo

VIDEO = VideoInfo(640, 360, 50)
CLASSES = ["pedestrian"]


def _codes(report):
    return [i.code for i in report.issues]


@pytest.mark.parametrize("member", ["../evil.csv", "a/../../evil.csv", "/etc/evil.csv", "C:/evil.csv",
                                    "..\\evil.csv"])
def test_zip_members_escaping_the_folder_are_refused(tmp_path, member):
    p = tmp_path / "x.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("ok.csv", "frame_number,label,x1,y1,x2,y2\n")
        zf.writestr(member, "frame_number,label,x1,y1,x2,y2\n")
    report = formats.validate("csv", p, video=VIDEO, classes=CLASSES)
    assert _codes(report) == ["unsafe_archive"]
    assert report.issues[0].file == member
    with pytest.raises(FormatError):
        list(formats.open_reader("csv", p, video=VIDEO, classes=CLASSES, options=ReadOptions(on_error="skip")))


def test_zip_symlink_member_is_refused(tmp_path):
    p = tmp_path / "x.zip"
    with zipfile.ZipFile(p, "w") as zf:
        info = zipfile.ZipInfo("link.csv")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    report = formats.validate("csv", p)
    assert _codes(report) == ["unsafe_archive"] and "link" in report.issues[0].message


def test_zip_bomb_ratio_is_refused_before_reading(tmp_path):
    p = tmp_path / "bomb.zip"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("gt.txt", b"\0" * (4 << 20))
    limits = Limits(max_ratio=50, ratio_floor_bytes=1 << 20)
    report = formats.validate("mot", p, options=ReadOptions(limits=limits))
    assert _codes(report) == ["archive_limit"] and "x" in report.issues[0].message


def test_zip_expanded_size_limit(tmp_path):
    p = tmp_path / "big.zip"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("gt.txt", "1,1,1,1,5,5,1,1,1\n" * 200)
    report = formats.validate("mot", p, options=ReadOptions(limits=Limits(max_total_bytes=1000)))
    assert _codes(report) == ["archive_limit"] and "1000" in report.issues[0].message


def test_member_count_limit(tmp_path):
    p = tmp_path / "many.zip"
    with zipfile.ZipFile(p, "w") as zf:
        for i in range(20):
            zf.writestr(f"labels/{i}.txt", "")
    report = formats.validate("yolo", p, video=VIDEO, options=ReadOptions(limits=Limits(max_members=10)))
    assert _codes(report) == ["archive_limit"]


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<annotations><version>&lol3;</version></annotations>
"""

EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE a [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<annotations><version>&xxe;</version></annotations>
"""


@pytest.mark.parametrize("text", [BILLION_LAUGHS, EXTERNAL], ids=["entity-expansion", "external-entity"])
def test_xml_entities_are_refused(tmp_path, text):
    p = tmp_path / "a.xml"
    p.write_text(text)
    report = formats.validate("cvat_video", p, video=VIDEO)
    assert _codes(report) == ["unsafe_xml"]
    with pytest.raises(FormatError):
        list(formats.open_reader("cvat_video", p, video=VIDEO, options=ReadOptions(on_error="skip")))


def test_yaml_alias_bomb_is_not_expanded(tmp_path):
    p = tmp_path / "y.zip"
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 12):
        bomb += f"{chr(97 + i)}: &{chr(97 + i)} [*{chr(96 + i)}, *{chr(96 + i)}, *{chr(96 + i)}, *{chr(96 + i)}]\n"
    bomb += "names: [*l]\n"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("data.yaml", bomb)
        zf.writestr("labels/train/1.txt", "0 0.5 0.5 0.1 0.1\n")
    report = formats.validate("yolo", p, video=VIDEO)
    assert not report.valid
    assert any(i.code == "type" and i.file == "data.yaml" for i in report.issues)


@pytest.mark.parametrize("fmt,content,code", [
    ("coco", b"frame_number,label\n1,a\n", "wrong_format"),
    ("coco", b"", "wrong_format"),
    ("cvat_video", b'{"images": []}', "wrong_format"),
    ("cvat_video", b"<html><body>hi</body></html>", "wrong_format"),
    ("csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "wrong_format"),
    ("csv", b'{"images": []}', "wrong_format"),
    ("mot", b"\xff\xfe\x00garbage", "wrong_format"),
    ("mot", b'{"images": [],\n"annotations": []}', "wrong_format"),
    ("yolo", b"just text", "wrong_format"),
])
def test_wrong_content_for_the_declared_format(tmp_path, fmt, content, code):
    p = tmp_path / "upload.bin"
    p.write_bytes(content)
    report = formats.validate(fmt, p, video=VIDEO, classes=CLASSES)
    assert not report.valid
    assert report.issues[0].code == code, report.issues


def test_json_document_refuses_other_json(tmp_path):
    p = tmp_path / "coco.json"
    p.write_text('{"images": [], "annotations": [], "categories": []}')
    report = formats.validate("json", p)
    assert _codes(report) == ["wrong_format"] and "format" in report.issues[0].message


def test_truncated_json_is_a_structure_error_with_a_line(tmp_path):
    p = tmp_path / "c.json"
    p.write_text('{"images": [\n{"id": 1, "frame_number": 0},\n{"id": 2, "fra')
    report = formats.validate("coco", p)
    assert report.issues[-1].code == "structure" and report.issues[-1].line == 3
