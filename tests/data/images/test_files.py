"""Scanning class folders: broken files are found before training and reported by path."""
import numpy as np
import pytest
from PIL import Image

from data import DataError
from data.images.files import check_scan, image_paths, load_image_file, scan_class_folders
from data.images.sources import load_class_folder


def test_scan_finds_classes_and_files(class_folder):
    scan = scan_class_folders(class_folder)
    assert scan.class_names == ["cat", "dog", "frog"]
    assert len(scan.files) == 36 and not scan.bad and not scan.converted


def test_files_the_system_writes_are_not_data(class_folder):
    for name in (".DS_Store", "._000.png", "Thumbs.db", "desktop.ini"):
        (class_folder / "cat" / name).write_bytes(b"\0\1")
    scan = scan_class_folders(class_folder)
    assert len(scan.files) == 36 and not scan.bad


def test_images_in_sub_folders_of_a_class_folder_are_that_class(class_folder):
    """image_dataset_from_directory's layout: cat/2019/b.png is a cat; hidden folders and ._ shadows are not data."""
    (class_folder / "cat" / "2019").mkdir()
    (class_folder / "cat" / "000.png").rename(class_folder / "cat" / "2019" / "b.png")
    for hidden in (class_folder / "cat" / "2019" / "._b.png", class_folder / "dog" / ".ipynb_checkpoints" / "x.png"):
        hidden.parent.mkdir(exist_ok=True)
        hidden.write_bytes(b"\0\5\26\7")
    scan = scan_class_folders(class_folder)
    assert len(scan.files) == 36 and not scan.bad
    assert (class_folder / "cat" / "2019" / "b.png", 0) in scan.files
    image_set = load_class_folder(class_folder, (8, 8), 3, skip_bad=False)
    assert image_set.labels[image_set.files.index("cat/2019/b.png")] == 0


def test_predict_folders_hold_a_persons_images_only(class_folder):
    """A folder unzipped on a Mac (__MACOSX/, ._x.png shadows) or used from a notebook (.ipynb_checkpoints)."""
    for hidden in (class_folder / "__MACOSX" / "cat" / "._000.png", class_folder / "cat" / "._001.png",
                   class_folder / ".ipynb_checkpoints" / "000-checkpoint.png"):
        hidden.parent.mkdir(parents=True, exist_ok=True)
        hidden.write_bytes(b"\0\5\26\7")
    found = image_paths([class_folder])
    assert len(found) == 36 and all(p.parent.name in ("cat", "dog", "frog") for p in found)
    named = class_folder / "cat" / "._001.png"
    assert image_paths([named]) == [named]  # a file named on the command line is taken as given


def test_predict_folders_count_pictures_they_cannot_decode(tmp_path, capsys):
    """An iPhone folder: its HEIC photos are named in a note, not left out unsaid; a .jfif is a JPEG."""
    folder = tmp_path / "phone"
    folder.mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder / "a.jpg")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder / "b.jfif", format="JPEG")
    (folder / "IMG_0001.HEIC").write_bytes(b"\0\0\0\x18ftypheic")
    assert [p.name for p in image_paths([folder])] == ["a.jpg", "b.jfif"]
    assert f"note: left out 1 picture(s) under {folder} in a format the exported models cannot decode (HEIC), e.g. " \
           f"{folder / 'IMG_0001.HEIC'}: convert them to JPEG or PNG" in capsys.readouterr().out
    image_paths([folder])
    assert "left out" not in capsys.readouterr().out  # once a run, though style transfer walks its folder thrice


def _add_broken_files(root):
    good = (root / "cat" / "000.png").read_bytes()
    jpeg = (root / "cat" / "001.jpg").read_bytes()
    (root / "cat" / "empty.jpg").write_bytes(b"")
    (root / "dog" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (root / "dog" / "text.png").write_text("this is not an image")
    (root / "frog" / "notes.txt").write_text("hello")  # not a picture: left out, counted
    (root / "frog" / "scan.tif").write_bytes(b"II*\x00")  # a picture the exported models cannot decode: named
    return good


def test_broken_files_reported_by_path(class_folder):
    _add_broken_files(class_folder)
    scan = scan_class_folders(class_folder)
    reasons = {p.name: why for p, why in scan.bad}
    assert set(reasons) == {"empty.jpg", "truncated.jpg", "text.png", "scan.tif"}
    assert "0 bytes" in reasons["empty.jpg"] and "corrupt" in reasons["truncated.jpg"]
    assert reasons["scan.tif"].startswith("a TIF picture, which the exported models' decoders cannot read")
    assert [p.name for p in scan.other] == ["notes.txt"]
    with pytest.raises(DataError, match="4 bad image file.*truncated.jpg|4 bad image file.*empty.jpg"):
        check_scan(scan, skip_bad=False)


def test_skip_bad_files_with_count(class_folder, capsys):
    _add_broken_files(class_folder)
    with pytest.warns(UserWarning, match="skipped 4 bad image file"):
        image_set = load_class_folder(class_folder, (16, 16), 3, skip_bad=True)
    assert image_set.images.shape == (36, 16, 16, 3)
    assert "note: left out 1 file(s) that are not pictures, e.g. " in capsys.readouterr().out


def test_grey_and_cmyk_among_colour_are_converted(class_folder):
    Image.new("L", (20, 24), 90).save(class_folder / "cat" / "grey.png")
    Image.new("CMYK", (20, 24), (10, 20, 30, 0)).save(class_folder / "dog" / "cmyk.jpg")
    scan = scan_class_folders(class_folder)
    assert {p.name for p, _ in scan.converted} == {"grey.png", "cmyk.jpg"}
    image = load_image_file(class_folder / "dog" / "cmyk.jpg", (8, 8), 3)
    assert image.shape == (8, 8, 3) and image.dtype == np.uint8
    with pytest.warns(UserWarning, match="2 image.*converted"):
        assert load_class_folder(class_folder, (8, 8), 3, skip_bad=False).images.shape[0] == 38


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(DataError, match="data folder not found: .*nowhere"):
        scan_class_folders(tmp_path / "nowhere")
    with pytest.raises(DataError, match="no class sub-folders"):
        scan_class_folders(tmp_path)
    (tmp_path / "cat").mkdir()
    with pytest.raises(DataError, match="class folder .*cat holds no images"):
        scan_class_folders(tmp_path)
    (tmp_path / "cat" / "README.txt").write_text("cats")
    with pytest.raises(DataError, match="class folder .*cat holds no images"):
        scan_class_folders(tmp_path)


@pytest.mark.parametrize("limit", [1000, 3000])  # a 4,800-pixel image: above twice the limit Pillow raises, above it warns
def test_decompression_bombs_are_reported_by_path(class_folder, monkeypatch, recwarn, limit):
    from data.images import decode

    Image.fromarray(np.zeros((60, 80, 3), np.uint8)).save(class_folder / "dog" / "huge.png")
    monkeypatch.setattr(decode, "MAX_PIXELS", limit)  # the serving limit, which the scan gives Pillow; others: 480 px
    scan = scan_class_folders(class_folder)  # no traceback, and no warning that names no file
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]
    assert [p.name for p, _ in scan.bad] == ["huge.png"] and len(scan.files) == 36
    with pytest.raises(DataError, match=r"1 bad image file\(s\): .*huge.png: too many pixels to decode safely \(Image size \(4800 pixels\)"):
        check_scan(scan, skip_bad=False)


def test_a_photo_over_pillows_limit_but_within_the_serving_limit_trains(class_folder, monkeypatch):
    """Pillow refuses above 89.5 MP by default; the export takes up to decode.MAX_PIXELS (120 MP): so does the scan."""
    from data.images import decode

    Image.fromarray(np.zeros((60, 80, 3), np.uint8)).save(class_folder / "dog" / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow's own limit, scaled down with the picture
    monkeypatch.setattr(decode, "MAX_PIXELS", 10_000)
    scan = scan_class_folders(class_folder)
    assert not scan.bad and len(scan.files) == 37 and Image.MAX_IMAGE_PIXELS == 1000  # Pillow's limit given back


def test_to_square_modes():
    import numpy as np
    import tensorflow as tf

    from data.images.files import to_square

    image = tf.constant(np.arange(5 * 3).reshape(5, 3, 1), tf.uint8)  # taller than wide
    rows = {mode: to_square(image, mode).numpy()[..., 0] for mode in ("center", "top", "bottom", "pad", "stretch")}
    assert rows["top"].tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert rows["center"][0].tolist() == [3, 4, 5] and rows["bottom"][-1].tolist() == [12, 13, 14]
    assert rows["pad"].shape == (5, 5) and rows["pad"][:, 0].tolist() == [0] * 5 and rows["pad"][0, 1:4].tolist() == [0, 1, 2]
    assert rows["stretch"].shape == (5, 3)
    wide = to_square(tf.zeros((2, 6, 3), tf.uint8), "bottom")
    assert wide.shape == (2, 2, 3)
    tight = to_square(tf.constant(np.arange(10 * 8).reshape(10, 8, 1), tf.uint8), ("bottom", 0.5)).numpy()[..., 0]
    assert tight.shape == (4, 4) and tight[0].tolist() == [50, 51, 52, 53]  # rows 6..9, columns 2..5


def test_a_16_bit_png_of_12_bit_data_is_named_not_read_nearly_black(tmp_path):
    """A microscope's 12-bit values in a 16-bit PNG decode to 8 bits as 0..15: refused with the way out; a PNG
    that uses the 16-bit range decodes as before."""
    from data.images.files import inspect_image, read_image_file

    ramp = np.linspace(0, 4095, 24 * 32).reshape(24, 32).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "cells.png")
    assert Image.open(tmp_path / "cells.png").mode.startswith("I;16")
    with pytest.raises(DataError, match=r"cells.png: a 16-bit PNG whose values reach only 4095 of 65535: decoded to 8 "
                                        r"bits, as the exported models decode it, it keeps 16 grey level\(s\), nearly black"):
        read_image_file(tmp_path / "cells.png")
    assert inspect_image(tmp_path / "cells.png")[1].startswith("a 16-bit PNG whose values reach only 4095")
    Image.fromarray(ramp * 16).save(tmp_path / "full.png")
    image = read_image_file(tmp_path / "full.png").numpy()
    assert image.shape == (24, 32, 3) and image.max() == 255


def _png_16(pixels, colour_type):
    """A 16-bit PNG written by hand (Pillow writes no 16-bit colour): pixels (h, w, channels) uint16."""
    import struct
    import zlib

    chunk = lambda kind, body: struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    h, w = pixels.shape[:2]
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in pixels)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_16_bit_checks_leave_out_alpha_and_come_after_the_decoders_checks(tmp_path):
    """An opaque 12-bit RGBA image (alpha 65535) is still refused as nearly black; a cut 16-bit PNG is the decoders'
    one-line refusal, not a TensorFlow error from the 16-bit check."""
    from data.images.files import read_image_file

    rgba = np.concatenate([np.full((6, 5, 3), 4095, np.uint16), np.full((6, 5, 1), 65535, np.uint16)], axis=-1)
    (tmp_path / "rgba.png").write_bytes(_png_16(rgba, 6))
    with pytest.raises(DataError, match="rgba.png: a 16-bit PNG whose values reach only 4095 of 65535"):
        read_image_file(tmp_path / "rgba.png")
    grey = _png_16(np.full((6, 5, 1), 40000, np.uint16), 0)
    (tmp_path / "grey.png").write_bytes(grey)
    assert read_image_file(tmp_path / "grey.png", 1).numpy().max() == 40000 >> 8
    (tmp_path / "cut.png").write_bytes(grey[:60])
    with pytest.raises(DataError, match="cut.png: "):
        read_image_file(tmp_path / "cut.png")


def test_a_phones_motion_photo_is_named_as_such(tmp_path):
    """A Pixel motion photo (an MP4 after the JPEG's end marker) fails the exports' end check: the message says
    what the file is and how to keep the still, instead of 'truncated or corrupt'."""
    from data.images.files import inspect_image, read_image_file

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "still.jpg")
    still = (tmp_path / "still.jpg").read_bytes()
    (tmp_path / "PXL_0001.MP.jpg").write_bytes(still + b"\0\0\0\x18ftypmp42" + bytes(range(200)))
    with pytest.raises(DataError, match=r"PXL_0001.MP.jpg: refused by the decoders the exported models use \(a JPEG "
                                        r"with data after its image: a phone's motion photo, its video appended\); "
                                        r"save the still alone, e.g. exiftool -trailer:all= FILE"):
        read_image_file(tmp_path / "PXL_0001.MP.jpg")
    assert "motion photo" in inspect_image(tmp_path / "PXL_0001.MP.jpg")[1]
    (tmp_path / "cut.jpg").write_bytes(still[:-40])  # truncated: still said as before
    assert "motion photo" not in inspect_image(tmp_path / "cut.jpg")[1]
