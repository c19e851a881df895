"""Mask readers: PNG kinds, every user error naming its file, image/mask folders, VOC layout, tfds, membrane."""
import numpy as np
import pytest
from PIL import Image

from data import DataError
from data.masks.sources import VOC_CLASSES, load_mask_folder, load_tfds_segmentation, load_voc_segmentation, read_mask
from tests.conftest import shared_data

PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [7, 7, 7] * 252 + [224, 224, 192]  # VOC-like: 255 = border colour


def _ids(h=12, w=16):
    ids = np.zeros((h, w), np.uint8)
    ids[2:8, 3:9] = 1
    ids[5:10, 8:14] = 2
    return ids


def _palette_png(path, ids):
    im = Image.fromarray(ids, mode="P")
    im.putpalette(PALETTE)
    im.save(path)
    return path


def test_read_mask_kinds(tmp_path):
    ids = _ids()
    Image.fromarray(ids).save(tmp_path / "l.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "l.png", 3), ids)
    with_border = ids.copy()
    with_border[0] = 255
    _palette_png(tmp_path / "p.png", with_border)  # indices are ids, not the palette's colours
    np.testing.assert_array_equal(read_mask(tmp_path / "p.png", 3), with_border)
    binary = (ids > 0).astype(np.uint8) * 255
    Image.fromarray(binary).save(tmp_path / "b.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "b.png", 2), ids > 0)
    Image.fromarray(binary).convert("1").save(tmp_path / "bit.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "bit.png", 2), ids > 0)
    Image.fromarray(np.repeat(ids[..., None], 3, -1)).save(tmp_path / "grey_rgb.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "grey_rgb.png"), ids)


def test_read_mask_errors_name_the_file(tmp_path):
    (tmp_path / "garbage.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"garbage.png: cannot read mask: not an image"):
        read_mask(tmp_path / "garbage.png")
    with pytest.raises(DataError, match=r"gone.png: mask file not found"):
        read_mask(tmp_path / "gone.png")
    colours = np.zeros((8, 8, 3), np.uint8)
    colours[2:5, 2:5] = [128, 0, 0]
    Image.fromarray(colours).save(tmp_path / "rgb.png")
    with pytest.raises(DataError, match=r"rgb.png: an RGB colour mask; .*palette PNG"):
        read_mask(tmp_path / "rgb.png")
    Image.fromarray(_ids()).save(tmp_path / "lossy.jpg")
    with pytest.raises(DataError, match=r"lossy.jpg: a JPEG mask: .*save masks as PNG"):
        read_mask(tmp_path / "lossy.jpg")
    Image.fromarray(_ids()).save(tmp_path / "three.png")
    with pytest.raises(DataError, match=r"three.png: class id\(s\) 2 beyond the 2 classes \(ids 0..1, 255 = ignore\)"):
        read_mask(tmp_path / "three.png", num_classes=2)


def test_interpolated_masks_are_refused(tmp_path):
    binary = Image.fromarray((_ids(24, 32) > 0).astype(np.uint8) * 255)
    binary.resize((50, 37), Image.BILINEAR).save(tmp_path / "resized.png")
    with pytest.raises(DataError, match=r"resized.png: looks interpolated: values .* lie between the class ids"):
        read_mask(tmp_path / "resized.png", num_classes=2)
    ids = _ids(24, 32) * 6  # ids 0, 6, 12 smoothed: 1..5 and 7..11 appear on the edges
    Image.fromarray(ids).resize((61, 45), Image.BILINEAR).save(tmp_path / "ids.png")
    with pytest.raises(DataError, match=r"ids.png: looks interpolated"):
        read_mask(tmp_path / "ids.png")
    # a real one-pixel boundary class between background and interior is not a ramp of many values
    ring = np.zeros((20, 20), np.uint8)
    ring[4:16, 4:16] = 1
    ring[5:15, 5:15] = 2
    Image.fromarray(ring).save(tmp_path / "ring.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "ring.png", 3), ring)


def _folder(root, names=("a", "b", "c"), binary=True, size=(12, 16)):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i, name in enumerate(names):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(root / "images" / f"{name}.{'jpg' if i % 2 else 'png'}")
        ids = np.roll(_ids(*size), i, axis=1)
        Image.fromarray(((ids > 0) * 255 if binary else ids).astype(np.uint8)).save(root / "masks" / f"{name}.png")
    return root


def test_load_mask_folder(tmp_path):
    mset = load_mask_folder(_folder(tmp_path / "bin"))
    assert mset.class_names == ["background", "foreground"] and len(mset) == 3
    assert mset.files == ["images/a.png", "images/b.jpg", "images/c.png"]
    assert mset.images[1].shape == (12, 16, 3) and mset.images[1].dtype == np.uint8
    np.testing.assert_array_equal(mset.masks[1], np.roll(_ids(), 1, axis=1) > 0)
    assert load_mask_folder(_folder(tmp_path / "ids", binary=False)).class_names == ["class_0", "class_1", "class_2"]
    named = _folder(tmp_path / "named", binary=False)
    (named / "classes.txt").write_text("sky\nroad\ncar\n")
    assert load_mask_folder(named).class_names == ["sky", "road", "car"]
    (named / "classes.txt").write_text("sky\nroad\n")
    with pytest.raises(DataError, match=r"masks/a.png: class id\(s\) 2 beyond the 2 classes"):
        load_mask_folder(named)


def test_a_mask_folder_skips_what_the_system_wrote(tmp_path):
    """A folder used from a notebook (.ipynb_checkpoints/ copies) or unzipped on a Mac (._a.png shadows), or
    opened on Windows (Thumbs.db): none of that is an image or a mask."""
    root = _folder(tmp_path / "d")
    for sub in ("images", "masks"):
        (root / sub / ".ipynb_checkpoints").mkdir()
        Image.fromarray(np.zeros((12, 16), np.uint8)).save(root / sub / ".ipynb_checkpoints" / f"{sub}-checkpoint.png")
        for name in ("._a.png", ".DS_Store", "Thumbs.db"):
            (root / sub / name).write_bytes(b"\0\5\26\7")
    (root / "images" / ".ipynb_checkpoints" / "c.png").write_bytes(b"\0\5")  # the same stem as images/c.png
    assert load_mask_folder(root).files == ["images/a.png", "images/b.jpg", "images/c.png"]


def test_one_mask_of_other_values_in_a_binary_set_is_refused(tmp_path):
    """A stray 1 (or an anti-aliased 128) in one of many 0/255 masks made 255 "ignore" in every mask."""
    root = _folder(tmp_path / "mixed")
    stray = np.asarray(Image.open(root / "masks" / "b.png")).copy()
    stray[0, :3] = 1
    Image.fromarray(stray).save(root / "masks" / "b.png")
    with pytest.raises(DataError, match=r"2 mask\(s\) are binary 0/255 \(e.g. masks/a.png\) but 1 hold other values "
                                        r"\(e.g. masks/b.png: 0, 1, 255\): make every mask 0/255"):
        load_mask_folder(root)
    (root / "classes.txt").write_text("background\nroad\ncar\n")  # three classes named: 255 is "ignore" everywhere
    mset = load_mask_folder(root, members=["images/a.png"])  # a split of the binary-looking masks alone
    assert mset.class_names == ["background", "road", "car"] and set(np.unique(mset.masks[0])) == {0, 255}


def test_named_classes_read_0_1_255_masks_as_ids_with_255_ignored(tmp_path):
    """Masks of background 0, lesion 1 and ignore 255 where one image has no lesion (0 and 255 only, so it looks
    binary): with the two classes named in classes.txt, 255 is "ignore" in every mask and 1 is the lesion."""
    root = _folder(tmp_path / "lesions")
    for name, lesion in (("b", True), ("c", True)):
        mask = np.asarray(Image.open(root / "masks" / f"{name}.png")).copy()
        mask[mask == 255] = 1
        mask[0, :4] = 255
        Image.fromarray(mask).save(root / "masks" / f"{name}.png")
    with pytest.raises(DataError, match=r"1 mask\(s\) are binary 0/255 .* named in classes.txt"):
        load_mask_folder(root)
    (root / "classes.txt").write_text("background\nlesion\n")
    mset = load_mask_folder(root)
    assert mset.class_names == ["background", "lesion"]
    assert set(np.unique(mset.masks[0])) == {0, 255} and set(np.unique(mset.masks[1])) == {0, 1, 255}
    alone = load_mask_folder(root, mset.class_names, members=["images/a.png"], binary=mset.binary)  # a recorded split
    assert set(np.unique(alone.masks[0])) == {0, 255}


def test_masks_with_nothing_but_background_are_refused(tmp_path):
    """Binary masks saved as palette PNGs: their 255 is palette index 255, VOC's "ignore", so nothing is left to
    learn; said with the way out. All-zero masks the same (a split of a recorded run may hold only background)."""
    root = _folder(tmp_path / "palette")
    for name in ("a", "b", "c"):
        mask = np.asarray(Image.open(root / "masks" / f"{name}.png"))
        _palette_png(root / "masks" / f"{name}.png", mask)
    with pytest.raises(DataError, match=r"every mask under .*masks holds only class 0 \(background\) and 255 \(ignore\): "
                                        r"nothing to segment; their objects are 255 in palette masks \(e.g. a.png\)"):
        load_mask_folder(root)
    for name in ("a", "b", "c"):
        Image.fromarray(np.zeros((12, 16), np.uint8)).save(root / "masks" / f"{name}.png")
    with pytest.raises(DataError, match=r"holds only class 0 \(background\) and 255 \(ignore\): nothing to segment$"):
        load_mask_folder(root)
    assert len(load_mask_folder(root, ["background", "foreground"], members=["images/a.png"])) == 1


def test_a_mask_too_large_to_decode_safely_is_named(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((40, 60), np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # 2,400 pixels: Pillow's warning, now an error naming the file
    with pytest.raises(DataError, match=r"big.png: cannot read mask: too many pixels to decode safely .*; downscale"):
        read_mask(path)


def test_tiff_masks_are_read_and_tiff_images_refused(tmp_path):
    """Microscopy sets come as TIFF: a mask is read by Pillow (never served); an image must be one the exported
    model decodes, so a TIFF photo is named, not left out unsaid."""
    root = _folder(tmp_path / "tiff")
    for name in ("a", "b", "c"):
        mask = root / "masks" / f"{name}.png"
        Image.open(mask).save(mask.with_suffix(".tif"))
        mask.unlink()
    mset = load_mask_folder(root)
    assert mset.class_names == ["background", "foreground"] and len(mset) == 3
    Image.open(root / "images" / "c.png").save(root / "images" / "d.tif")
    with pytest.raises(DataError, match=r"1 picture\(s\) under .*images in a format the exported model's decoder "
                                        r"cannot read, e.g. .*d.tif: convert them to PNG \(e.g. `mogrify -format png \*.tif`\)"):
        load_mask_folder(root)


def test_sparse_ids_warn_and_a_blank_line_in_classes_txt_is_refused(tmp_path):
    root = _folder(tmp_path / "sparse", binary=False)
    for name in ("a", "b", "c"):
        ids = np.asarray(Image.open(root / "masks" / f"{name}.png"))
        Image.fromarray((ids * 100).astype(np.uint8)).save(root / "masks" / f"{name}.png")  # 0, 100, 200
    with pytest.warns(UserWarning, match=r"the masks use 3 class ids up to 200 \(0, 100, 200\): the model gets 201 "
                                         r"classes, 198 of them never seen; .*map your values to them"):
        assert len(load_mask_folder(root).class_names) == 201
    named = _folder(tmp_path / "named", binary=False)
    (named / "classes.txt").write_text("sky\n\nroad\ncar\n\n")
    with pytest.raises(DataError, match=r"classes.txt line 2 is blank; one class name per line, id 0 first"):
        load_mask_folder(named)
    (named / "classes.txt").write_text("sky\nroad\ncar\n\n")  # blank lines at the end are fine
    assert load_mask_folder(named).class_names == ["sky", "road", "car"]


def test_mask_folder_errors(tmp_path):
    root = _folder(tmp_path / "d", names=("a", "b", "c", "d"))
    (root / "masks" / "b.png").unlink()
    (root / "masks" / "d.png").unlink()
    Image.fromarray(np.zeros((12, 16), np.uint8)).save(root / "masks" / "x.png")
    with pytest.raises(DataError, match=r"2 image\(s\) have no mask in .*masks \(images/b.jpg, images/d.jpg\); "
                                        r"1 mask\(s\) have no image in .*images \(masks/x.png\)"):
        load_mask_folder(root)
    root = _folder(tmp_path / "size")
    Image.fromarray(np.zeros((10, 16), np.uint8)).save(root / "masks" / "b.png")
    with pytest.raises(DataError, match=r"mask .*masks/b.png is 10x16 \(HxW\) but its image .*images/b.jpg is 12x16"):
        load_mask_folder(root)
    root = _folder(tmp_path / "bad")
    (root / "images" / "c.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match=r"images/c.png: "):
        load_mask_folder(root)
    (tmp_path / "empty" / "images").mkdir(parents=True)
    with pytest.raises(DataError, match=r"has no masks/ folder"):
        load_mask_folder(tmp_path / "empty")


def test_a_phone_photo_is_read_upright_and_a_mask_of_it_as_stored_is_refused_saying_why(tmp_path):
    root = _folder(tmp_path / "phone", names=("a", "b"))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side: a quarter turn clockwise shows it upright
    Image.fromarray(np.zeros((16, 12, 3), np.uint8)).save(root / "images" / "b.jpg", exif=exif.tobytes())
    mset = load_mask_folder(root)  # its mask (12x16) fits the upright photo
    assert mset.images[1].shape == (12, 16, 3) and mset.masks[1].shape == (12, 16)
    Image.fromarray(np.zeros((16, 12), np.uint8)).save(root / "masks" / "b.png")  # drawn on the photo as stored
    with pytest.raises(DataError, match=r"masks/b.png is 16x12 \(HxW\) but its image .*b.jpg is 12x16; .*EXIF "
                                        r"orientation turns it upright .* rotate the mask, or remove"):
        load_mask_folder(root)


def _voc(root, ids=("2007_000001", "2007_000002", "2007_000003")):
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / d).mkdir(parents=True)
    for i, name in enumerate(ids):
        Image.fromarray(np.full((12, 16, 3), 40 * i, np.uint8)).save(root / "JPEGImages" / f"{name}.jpg")
        mask = _ids() * (i + 5)
        mask[0, :] = 255  # VOC's object border: ignore
        _palette_png(root / "SegmentationClass" / f"{name}.png", mask)
    (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(ids[:2]) + "\n")
    (root / "ImageSets/Segmentation/val.txt").write_text(ids[2] + "\n")
    return root


def test_voc_segmentation(tmp_path):
    root = _voc(tmp_path / "VOCdevkit" / "VOC2012")
    train = load_voc_segmentation(tmp_path / "VOCdevkit", "train")  # the one VOC20xx folder inside is found
    assert train.class_names == VOC_CLASSES and len(VOC_CLASSES) == 21
    assert train.files == ["JPEGImages/2007_000001.jpg", "JPEGImages/2007_000002.jpg"]
    assert sorted(np.unique(train.masks[1])) == [0, 6, 12, 255]
    with pytest.raises(DataError, match=r"ImageSets/Segmentation/trainval.txt not found \(have: train, val\)"):
        load_voc_segmentation(root, "trainval")
    mask = _ids() * 11  # id 22 is beyond VOC's 21 classes
    _palette_png(root / "SegmentationClass" / "2007_000003.png", mask)
    with pytest.raises(DataError, match=r"2007_000003.png: class id\(s\) 22 beyond the 21 classes"):
        load_voc_segmentation(root, "val")
    (root / "SegmentationClass" / "2007_000002.png").unlink()
    with pytest.raises(DataError, match=r"SegmentationClass/2007_000002.png not found \(listed in ImageSets/Segmentation/train.txt\)"):
        load_voc_segmentation(root, "train")


def test_tfds_offline_errors(tmp_path):
    with pytest.raises(DataError, match="needs --data.data_dir"):
        load_tfds_segmentation("oxford_iiit_pet", None, "train")
    with pytest.raises(DataError, match=r"not prepared in .*tfds build oxford_iiit_pet"):
        load_tfds_segmentation("oxford_iiit_pet", str(tmp_path), "train")


def test_tfds_pets_prepared_offline(tmp_path):
    """oxford_iiit_pet prepared locally from two tiny examples (the real builder's features, our files):
    trimap 1 pet, 2 background, 3 border -> 0 background, 1 pet, 255 ignore."""
    import tensorflow_datasets as tfds

    real = tfds.builder_cls("oxford_iiit_pet")
    trimap = np.full((10, 14, 1), 2, np.uint8)
    trimap[3:7, 4:9] = 3
    trimap[4:6, 5:8] = 1

    class TinyPets(real, skip_registration=True):
        name = "oxford_iiit_pet"

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(), "test": self._generate_examples()}

        def _generate_examples(self):
            for i in range(2):
                yield i, {"image": np.full((10, 14, 3), 50 * i, np.uint8), "label": i, "species": 0, "file_name": f"{i}.jpg",
                          "segmentation_mask": trimap, "head_bbox": tfds.features.BBox(0.1, 0.1, 0.5, 0.5)}

    TinyPets(data_dir=str(tmp_path)).download_and_prepare()
    mset = load_tfds_segmentation("oxford_iiit_pet", str(tmp_path), "train")
    assert mset.class_names == ["background", "pet"] and len(mset) == 2 and mset.files is None
    expected = np.where(trimap[..., 0] == 1, 1, np.where(trimap[..., 0] == 2, 0, 255))
    np.testing.assert_array_equal(mset.masks[0], expected)
    assert mset.images[1].shape == (10, 14, 3)


def test_membrane_set_reads_as_binary_masks():
    mset = load_mask_folder(shared_data("segmentation/membrane"))
    assert len(mset) == 30 and mset.class_names == ["background", "foreground"]
    assert all(im.shape == (512, 512, 3) for im in mset.images) and all(m.shape == (512, 512) for m in mset.masks)
    cells = np.mean([m.mean() for m in mset.masks])  # label 255 (white) = cell interior = class 1
    assert 0.7 < cells < 0.85 and {int(v) for m in mset.masks for v in np.unique(m)} == {0, 1}


def test_max_side_holds_each_pair_shrunk_as_it_is_read(tmp_path):
    """--data.max_side: a 120x160 image and its mask are held at 48x64, the mask by nearest neighbour (its
    ids, no new ones); a pair that fits is kept as it is; a size mismatch is still judged at full size."""
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    ids = np.kron(_ids(), np.ones((10, 10), np.uint8))  # 120 x 160
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(tmp_path / "images" / "big.png")
    _palette_png(tmp_path / "masks" / "big.png", ids)
    Image.fromarray(rng.integers(0, 255, (30, 20, 3), dtype=np.uint8)).save(tmp_path / "images" / "small.png")
    _palette_png(tmp_path / "masks" / "small.png", _ids(30, 20))
    held = load_mask_folder(tmp_path, ["a", "b", "c"], max_side=64)
    assert [i.shape for i in held.images] == [(48, 64, 3), (30, 20, 3)]
    assert [m.shape for m in held.masks] == [(48, 64), (30, 20)]
    assert set(np.unique(held.masks[0])) == {0, 1, 2}
    np.testing.assert_array_equal(held.masks[1], _ids(30, 20))
    whole = load_mask_folder(tmp_path, ["a", "b", "c"])
    assert whole.images[0].shape == (120, 160, 3) and np.array_equal(whole.images[1], held.images[1])
    _palette_png(tmp_path / "masks" / "big.png", ids[:, :150])
    with pytest.raises(DataError, match=r"mask .*big.png is 120x150 \(HxW\) but its image .*big.png is 120x160"):
        load_mask_folder(tmp_path, ["a", "b", "c"], max_side=64)
