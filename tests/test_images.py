"""common/images.py: one way to open a user's image (upright, 8-bit RGB, transparency on white), one way to read a mask
(as stored), and every train and predict path going through them (issue 11, case 5 "Images read wrongly")."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from common import classification, seg_predict, segmentation
from common import predict as classify_cli
from common.errors import UserError
from common.images import check_images, list_files, open_image, open_mask, oriented_size
from common.palette import to_palette_image
from common.synthetic import SyntheticSegmentation, write_voc
from util import load

RED, BLUE = (255, 0, 0), (0, 0, 255)
ORIENTATION = 0x0112  # the EXIF tag


def exif(orientation: int) -> Image.Exif:
    tags = Image.Exif()
    tags[ORIENTATION] = orientation
    return tags


def sideways_jpeg(path: Path, size: tuple[int, int] = (45, 30)) -> Path:
    """A phone photo as stored: `size` (w×h) blue pixels with a red block in the stored top-left corner, and EXIF
    orientation 6 (a viewer turns it 90° clockwise, so it shows h wide, w high, the red block top-right)."""
    img = Image.new("RGB", size, BLUE)
    img.paste(RED, (0, 0, 12, 12))
    img.save(path, quality=95, exif=exif(6))
    return path


def assert_close(pixel: np.ndarray, expected: tuple[int, ...], tol: int = 0) -> None:
    assert np.abs(pixel.astype(int) - np.array(expected)).max() <= tol, (pixel, expected)


def test_exif_orientation_6_is_applied_size_and_content(tmp_path: Path) -> None:
    img = open_image(sideways_jpeg(tmp_path / "phone.jpg"))
    assert img.mode == "RGB" and img.size == (30, 45)  # transposed: 30 wide, 45 high
    rgb = np.asarray(img)
    assert_close(rgb[3, 26], RED, tol=40)  # the stored top-left block is now top-right ...
    assert_close(rgb[3, 3], BLUE, tol=40)  # ... and nothing red is left where it was stored
    assert_close(rgb[41, 3], BLUE, tol=40)


def test_16_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 32896, 65535, 100 * 257]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "depth.png")
    assert Image.open(tmp_path / "depth.png").mode == "I;16"
    rgb = np.asarray(open_image(tmp_path / "depth.png"))
    assert rgb.shape == (1, 4, 3)
    assert rgb[0, :, 0].tolist() == [0, 128, 255, 100] and (rgb == rgb[..., :1]).all()  # grey, value / 257
    from common.images import _scaled_to_8_bits
    assert _scaled_to_8_bits(Image.open(tmp_path / "depth.png")).mode == "L"  # 8-bit grey, not float


def test_32_bit_integer_and_float_tiffs_follow_the_documented_rules(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 32896, 65535, 70000, -5]], dtype=np.int32)).save(tmp_path / "i.tif")
    Image.fromarray(np.array([[0.0, 0.5, 1.0, 2.0, -1.0, np.nan, 0.3]], dtype=np.float32)).save(tmp_path / "f.tif")
    assert Image.open(tmp_path / "i.tif").mode == "I" and Image.open(tmp_path / "f.tif").mode == "F"
    assert np.asarray(open_image(tmp_path / "i.tif"))[0, :, 0].tolist() == [0, 128, 255, 255, 0]  # 16-bit rule, clipped
    # [0, 1] × 255, rounded: 0.3 → 76.5 → 76 (× 256 would give 77)
    assert np.asarray(open_image(tmp_path / "f.tif"))[0, :, 1].tolist() == [0, 128, 255, 255, 0, 0, 76]


def test_transparency_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.array([[[0, 0, 0, 0], [255, 0, 0, 255], [255, 0, 0, 128]]], dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    assert_close(np.asarray(open_image(tmp_path / "rgba.png"))[0], np.array([[255, 255, 255], RED, [255, 127, 127]]),
                 tol=1)

    Image.fromarray(np.array([[[0, 0], [50, 255]]], dtype=np.uint8), mode="LA").save(tmp_path / "la.png")
    assert np.asarray(open_image(tmp_path / "la.png"))[0].tolist() == [[255, 255, 255], [50, 50, 50]]

    palette = Image.new("P", (2, 1))
    palette.putpalette([0, 0, 0, 0, 200, 0])  # index 0 black (transparent), index 1 green
    palette.putdata([0, 1])
    palette.save(tmp_path / "p.png", transparency=0)
    assert np.asarray(open_image(tmp_path / "p.png"))[0].tolist() == [[255, 255, 255], [0, 200, 0]]


def test_cmyk_jpeg_is_converted_and_passes_the_check(tmp_path: Path) -> None:
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "print.jpg")
    img = open_image(tmp_path / "print.jpg")
    assert img.mode == "RGB" and img.size == (8, 8)
    assert_close(np.asarray(img)[4, 4], RED, tol=8)
    assert check_images([tmp_path / "print.jpg"]) == [tmp_path / "print.jpg"]


@pytest.mark.parametrize("reader, what", [(open_image, "image"), (open_mask, "mask")])
def test_unreadable_and_missing_files_are_user_errors_naming_them(tmp_path: Path, reader, what: str) -> None:
    (tmp_path / "page.jpg").write_text("<html>404</html>")
    with pytest.raises(UserError, match=rf"page\.jpg is not a readable {what} \(UnidentifiedImageError"):
        reader(tmp_path / "page.jpg")
    with pytest.raises(UserError, match=r"gone\.png: no such file"):
        reader(tmp_path / "gone.png")


def test_mask_reader_returns_the_stored_labels_exactly(tmp_path: Path) -> None:
    labels = np.array([[0, 1, 2], [255, 1, 0]], dtype=np.uint8)
    mask = to_palette_image(labels)
    mask.save(tmp_path / "p.png", transparency=0, exif=exif(6))  # a transparent index and a sideways EXIF tag
    Image.fromarray(labels).save(tmp_path / "l.png", exif=exif(6))
    for name, mode in (("p.png", "P"), ("l.png", "L")):
        read = open_mask(tmp_path / name)
        assert read.mode == mode and read.size == (3, 2)
        assert np.array_equal(np.asarray(read), labels)
    assert open_image(tmp_path / "p.png").size == (2, 3)  # the image reader would have turned it


def test_voc_pairs_compare_the_upright_image_with_the_stored_mask(tmp_path: Path) -> None:
    voc = write_voc(tmp_path, {"train": SyntheticSegmentation(2, image_size=24)})
    sideways_jpeg(voc / "JPEGImages" / "train_00000.jpg", size=(32, 24))  # shows as 24 wide, 32 high
    labels = np.zeros((32, 24), dtype=np.uint8)
    labels[:8, 16:] = 3
    labels[-2:] = 255
    to_palette_image(labels).save(voc / "SegmentationClass" / "train_00000.png", transparency=0, exif=exif(6))
    image, mask = segmentation.VOCSegmentationFiles(tmp_path, "train", None, num_classes=6)[0]
    assert image.mode == "RGB" and image.size == (24, 32) == mask.size
    assert np.array_equal(np.asarray(mask), labels)
    to_palette_image(labels.T.copy()).save(voc / "SegmentationClass" / "train_00000.png")  # drawn on the stored grid
    with pytest.raises(UserError, match=r"train_00000\.jpg is 24x32 but its mask .*train_00000\.png is 32x24"):
        segmentation.VOCSegmentationFiles(tmp_path, "train", None, num_classes=6)


def test_every_training_reader_opens_images_upright(tmp_path: Path) -> None:
    for split in ("train", "val"):
        for cls in ("ants", "bees"):
            (tmp_path / split / cls).mkdir(parents=True)
            sideways_jpeg(tmp_path / split / cls / "phone.jpg")
    upright = (30, 45)
    train, _ = classification.load_imagefolder(tmp_path)  # 05, 08, 09 --data imagefolder
    assert train[0][0].size == upright
    assert load("01_dataset", "dataset").MyData(tmp_path / "train", "ants")[0][0].size == upright
    tb_train = load("02_tensorboard_transforms", "train")
    train, _, _ = tb_train.load_data(argparse.Namespace(data="imagefolder", data_path=tmp_path, skip_bad=False))
    assert train[0][0].size == upright


def test_predict_help_says_how_images_are_read() -> None:
    for parser in (classify_cli.get_args_parser(), seg_predict.get_args_parser(),
                   load("02_tensorboard_transforms", "predict").get_args_parser()):
        text = " ".join(parser.format_help().split())
        assert "EXIF orientation is applied" in text and "transparency is composited on white" in text


def test_segmentation_predict_writes_the_mask_at_the_upright_size(tmp_path: Path) -> None:
    fcn = load("06_fcn", "model")
    model = fcn.build_model("fcn32s", num_classes=2, backbone="light")
    torch.save({"model": model.state_dict(), "model_name": "fcn32s", "model_kwargs": {"backbone": "light"},
                "class_names": ["background", "thing"], "preprocess": {}}, tmp_path / "fcn.pth")
    photo = sideways_jpeg(tmp_path / "phone.jpg")
    predict = load("06_fcn", "predict")
    assert predict.main([str(tmp_path / "fcn.pth"), str(photo), "--output-dir", str(tmp_path / "out")]) == 0
    for name in ("phone_mask.png", "phone_overlay.png"):
        with Image.open(tmp_path / "out" / name) as written:
            assert written.size == (30, 45)  # upright, as the photo is shown, not as it is stored (45×30)


def test_classification_predict_reads_16_bit_as_its_8_bit_twin(tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    model = load("01_dataset", "model").build_model("smallcnn", num_classes=3)
    torch.save({"model": model.state_dict(), "model_name": "smallcnn", "class_names": ["a", "b", "c"],
                "preprocess": {"resize": [16, 16], "mean": [0.5] * 3, "std": [0.5] * 3}}, tmp_path / "cnn.pth")
    grey = np.add.outer(np.arange(16), np.arange(16)).astype(np.uint8) * 8  # a diagonal ramp, 0..240
    Image.fromarray(grey).save(tmp_path / "eight.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "sixteen.png")  # the same picture in 16 bits
    Image.new("L", (16, 16), 255).save(tmp_path / "white.png")  # what clipping made of it
    predict = load("01_dataset", "predict")
    paths = [tmp_path / f"{n}.png" for n in ("eight", "sixteen", "white")]
    assert predict.main([str(tmp_path / "cnn.pth"), *map(str, paths), "--topk", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    results = {}
    for path, line in zip(paths, lines):
        shown = line.removeprefix(f"{path}: ").split(", ")
        results[path.stem] = [(s.split(" (")[0], float(s.split(" (")[1].rstrip(")"))) for s in shown]
    eight, sixteen, white = results["eight"], results["sixteen"], results["white"]
    assert sixteen[0][0] == eight[0][0]
    assert dict(sixteen) == pytest.approx(dict(eight), abs=1e-3)
    assert dict(white) != pytest.approx(dict(eight), abs=1e-3)  # the check can tell a clipped image apart


@pytest.mark.parametrize("orientation, turned", [(1, False), (2, False), (3, False), (4, False), (5, True), (6, True),
                                                 (7, True), (8, True)])
def test_oriented_size_turns_exactly_the_90_degree_orientations(tmp_path: Path, orientation: int, turned: bool) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.new("RGB", (30, 20)).save(tmp_path / "o.jpg", exif=exif)
    assert oriented_size(tmp_path / "o.jpg") == ((20, 30) if turned else (30, 20))
    assert open_image(tmp_path / "o.jpg").size == oriented_size(tmp_path / "o.jpg")


def test_header_reader_and_checks_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "page.jpg"
    bad.write_text("<html>")
    with pytest.raises(UserError, match=rf"^{re.escape(str(bad))} is not a readable image \(UnidentifiedImageError"):
        oriented_size(bad)
    with pytest.raises(UserError, match=rf"^{re.escape(str(bad))} is not a readable image .*; remove it or pass "
                                        "--skip-bad$"):
        check_images([bad])  # strict unless asked to skip
    with pytest.raises(UserError, match=rf"^{re.escape(str(bad))} is not a folder$"):
        list_files(bad)
