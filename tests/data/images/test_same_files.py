"""Training and serving accept the same image files, and see the same pixels: one decoder for both, run
eagerly for a process's first files and traced after (data.images.files._checked_decode): both ways alike."""
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from data.errors import DataError
from data.images.decode import decode_image_batch
from data.images import files
from data.images.files import read_image_file, scan_class_folders

ACCEPTED = {  # file name -> how Pillow writes it
    "cmyk.jpg": lambda im: im.convert("CMYK"),
    "progressive.jpg": lambda im: im,
    "grey.jpg": lambda im: im.convert("L"),
    "grey_alpha.png": lambda im: im.convert("LA"),
    "rgba.png": lambda im: im.convert("RGBA"),
    "palette.png": lambda im: im.convert("P"),
    "sixteen_bit.png": lambda im: Image.fromarray(np.asarray(im.convert("L")).astype(np.uint16) * 257),
    "grey.bmp": lambda im: im.convert("L"),  # 8-bit, its palette the grey ramp
    "rgba.bmp": lambda im: im.convert("RGBA"),
    "palette.gif": lambda im: im.convert("P"),
    "photo.webp": lambda im: im,
}
REFUSED = {"bilevel.bmp": lambda im: im.convert("1"),  # 1-bit BMP: TensorFlow's BMP decoder has no such mode
           "palette.bmp": lambda im: im.convert("P"),  # 8-bit colour palette: TensorFlow reads the indices as grey
           "trailer.jpg": lambda im: im}  # bytes after the end marker: serving's truncation check refuses it


def _write(folder, name, make):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8))
    kwargs = {"progressive": True} if name == "progressive.jpg" else {}
    make(image).save(folder / name, **kwargs)
    if name == "trailer.jpg":
        (folder / name).write_bytes((folder / name).read_bytes() + b"camera trailer")
    return folder / name


@pytest.fixture(params=["eager", "traced"])
def decoding(request, monkeypatch):
    """Training's decoder as a process's first files meet it (eager) and as the later ones do (traced)."""
    monkeypatch.setattr(files, "_eager_calls", 0 if request.param == "eager" else files._EAGER_FILES)
    return request.param


serve = tf.function(lambda images: decode_image_batch(images, (20, 30), 3),
                    input_signature=[tf.TensorSpec([None], tf.string)])


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_a_file_that_trains_is_served_with_the_same_pixels(name, tmp_path, decoding):
    path = _write(tmp_path, name, ACCEPTED[name])
    trained = read_image_file(path, 3).numpy()
    served = serve(tf.constant([path.read_bytes()]))[0].numpy()
    np.testing.assert_array_equal(trained, served)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_file_serving_refuses_is_refused_in_training_by_path(name, tmp_path, decoding):
    path = _write(tmp_path, name, REFUSED[name])
    with pytest.raises(tf.errors.InvalidArgumentError):
        serve(tf.constant([path.read_bytes()]))
    with pytest.raises(DataError, match=f"{name}: refused by the decoders the exported models use .*convert it to PNG or JPEG"):
        read_image_file(path, 3)
    (tmp_path / "cls").mkdir()
    path.rename(tmp_path / "cls" / name)
    _write(tmp_path / "cls", "ok.png", ACCEPTED["rgba.png"])
    scan = scan_class_folders(tmp_path)
    assert [p.name for p, _ in scan.files] == ["ok.png"]
    assert (files._eager_calls < files._EAGER_FILES) == (decoding == "eager")
    assert [(p.name, why.startswith("refused by the decoders")) for p, why in scan.bad] == [(name, True)]


def test_a_photo_over_the_pixel_limit_is_refused_with_advice_to_downscale(tmp_path, monkeypatch):
    from data.images import decode

    monkeypatch.setattr(decode, "MAX_PIXELS", 500)  # 20 x 30 = 600 pixels
    files._traced.clear()  # the traced decoder holds the limit it was traced with
    path = _write(tmp_path, "big.jpg", lambda im: im)
    with pytest.raises(DataError, match=r"big.jpg: refused by the decoders the exported models use \(`images` holds "
                                        r"images whose headers claim more than 500 pixels.*\); downscale it$"):
        read_image_file(path, 3)
    files._traced.clear()


def test_eager_and_traced_decoding_refuse_with_the_same_reason(tmp_path, monkeypatch):
    made = {name: _write(tmp_path, name, make).read_bytes() for name, make in REFUSED.items()}
    jpeg = _write(tmp_path, "ok.jpg", lambda im: im).read_bytes()
    cases = {**made, "garbage": b"not an image at all", "truncated.jpg": jpeg[: len(jpeg) // 2],
             "no header.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 40}
    reasons = {}
    for mode, calls in (("eager", 0), ("traced", files._EAGER_FILES)):
        monkeypatch.setattr(files, "_eager_calls", calls)
        reasons[mode] = {name: files._tensorflow_refuses(data) for name, data in cases.items()}
    assert reasons["eager"] == reasons["traced"]
    assert all(r and "refused by the decoders" in r and "Expected" not in r and "[Op:" not in r and "indices" not in r
               for r in reasons["eager"].values()), reasons["eager"]
    assert "(`images` holds truncated or corrupt images" in reasons["eager"]["truncated.jpg"]
