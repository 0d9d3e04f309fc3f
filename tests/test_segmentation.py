"""common/segmentation.py and common/seg_predict.py: VOC layout, joint transforms, padding, void, poly LR, predict."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from common import seg_predict, segmentation
from common.errors import UserError
from common.metrics import ConfusionMatrix
from common.palette import to_palette_image
from common.synthetic import SyntheticSegmentation, write_voc

# Seven corners of the RGB cube, none black: no colour is a blend of the others, and black marks the image padding.
CORNERS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255], [0, 255, 255],
                    [255, 255, 255]], dtype=np.uint8)
# The label drawn in each colour: far apart, so a mask blended between two classes (bilinear, not nearest) shows up as a
# value outside this set.
LABELS = np.array([0, 20, 7, 14, 3, 17, 10], dtype=np.uint8)


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("voc")
    write_voc(root, {"train": SyntheticSegmentation(4, image_size=40, split="train"),
                     "val": SyntheticSegmentation(3, image_size=40, split="val")})
    return root


def colour_coded_pair(rng: np.random.Generator, h: int = 48, w: int = 40) -> tuple[Image.Image, Image.Image]:
    """An image whose colour encodes its label (CORNERS[k] ↔ LABELS[k]) in 8×8 blocks: the mask can be recomputed."""
    blocks = rng.integers(0, len(CORNERS), (h // 8 + 1, w // 8 + 1))
    index = np.kron(blocks, np.ones((8, 8), dtype=np.int64))[:h, :w]
    return Image.fromarray(CORNERS[index]), to_palette_image(LABELS[index])


def test_voc_layout_loads_through_torchvision_and_matches_the_drawn_masks(voc_root: Path) -> None:
    ds = segmentation.VOCSegmentationFiles(voc_root, "train", segmentation.SegEvalTransform(), num_classes=6)
    assert len(ds) == 4
    image, mask = ds[1]
    _, expected = SyntheticSegmentation(4, image_size=40, split="train").sample(1)
    assert image.shape == (3, 40, 40) and image.dtype == torch.float32
    assert torch.equal(mask, torch.from_numpy(expected).long())  # palette PNG round trip: indices, 255 kept
    assert (mask == 255).any()


def test_void_band_is_ignored_by_the_loss_and_by_miou(voc_root: Path) -> None:
    ds = segmentation.VOCSegmentationFiles(voc_root, "val", segmentation.SegEvalTransform(), num_classes=6)
    _, mask = segmentation.collate_pad([ds[i] for i in range(len(ds))])
    void = mask == 255
    assert void.any()
    # logits perfect on labelled pixels and confidently "class 1" on the void band
    predicted = mask.clone()
    predicted[void] = 1
    logits = F.one_hot(predicted, 6).permute(0, 3, 1, 2).float() * 40 - 20
    criterion = nn.CrossEntropyLoss(ignore_index=255)
    assert criterion(logits, mask).item() < 1e-6
    cm = ConfusionMatrix(6)
    cm.update(logits, mask)
    assert cm.compute()["miou"] == pytest.approx(1.0) and cm.compute()["pixel_accuracy"] == pytest.approx(1.0)
    # the same logits scored against the band relabelled as background: now it counts, and hurts
    relabelled = mask.clone()
    relabelled[void] = 0
    assert criterion(logits, relabelled).item() > 1
    cm.reset()
    cm.update(logits, relabelled)
    assert cm.compute()["miou"] < 0.95


def test_bad_label_is_a_user_error_naming_the_file(tmp_path: Path) -> None:
    voc = write_voc(tmp_path, {"train": SyntheticSegmentation(2, image_size=24)})
    bad = voc / "SegmentationClass" / "train_00001.png"
    labels = np.asarray(Image.open(bad)).copy()
    labels[0, 0] = 30
    to_palette_image(labels).save(bad)
    with pytest.raises(UserError, match=r"train_00001\.png.*\[30\]"):
        segmentation.VOCSegmentationFiles(tmp_path, "train", None, num_classes=21)


def test_size_mismatch_is_a_user_error_naming_the_pair(tmp_path: Path) -> None:
    voc = write_voc(tmp_path, {"train": SyntheticSegmentation(2, image_size=24)})
    Image.new("RGB", (25, 24)).save(voc / "JPEGImages" / "train_00000.jpg")
    with pytest.raises(UserError, match=r"train_00000\.jpg is 25x24 but its mask .*train_00000\.png is 24x24"):
        segmentation.VOCSegmentationFiles(tmp_path, "train", None)


def test_rgb_mask_and_missing_data_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--download"):
        segmentation.VOCSegmentationFiles(tmp_path / "nothing", "train", None)
    voc = write_voc(tmp_path, {"train": SyntheticSegmentation(1, image_size=24)})
    Image.new("RGB", (24, 24)).save(voc / "SegmentationClass" / "train_00000.png")
    with pytest.raises(UserError, match=r"train_00000\.png: mask mode 'RGB'"):
        segmentation.VOCSegmentationFiles(tmp_path, "train", None)


def test_train_transform_keeps_image_and_mask_aligned() -> None:
    """Scale, pad, crop and flip: wherever the output pixel is still a pure class colour, the mask says that class;
    wherever the image is padding (black), the mask is 255; and no label is invented between two classes."""
    rng = np.random.default_rng(0)
    transform = segmentation.SegTrainTransform(crop_size=36, mean=(0, 0, 0), std=(1, 1, 1))
    torch.manual_seed(0)
    checked = 0
    for _ in range(12):
        image, mask = colour_coded_pair(rng)
        img, target = transform(image, mask)
        assert img.shape == (3, 36, 36) and target.shape == (36, 36) and target.dtype == torch.int64
        rgb = (img * 255).round().permute(1, 2, 0).numpy()
        labels = target.numpy()
        assert set(np.unique(labels)) <= set(LABELS.tolist()) | {255}
        for colour, label in zip(CORNERS, LABELS):
            pure = np.abs(rgb - colour).max(-1) <= 1
            assert (labels[pure] == label).all()
            checked += int(pure.sum())
        black = np.abs(rgb).max(-1) <= 1
        assert (labels[black] == 255).all() and (labels[~black] != 255).all()
    assert checked > 12 * 36 * 36 * 0.3  # most pixels are pure: the check is not vacuous


def test_train_transform_scales_within_range_and_flips() -> None:
    """With a crop larger than any scaled image nothing is cut: the labelled region's side is 20 × the random scale
    (0.5–2.0), and it sits on the left (padding right) unless the flip moved it to the right."""
    rng = np.random.default_rng(1)
    image, mask = colour_coded_pair(rng, 20, 20)
    transform = segmentation.SegTrainTransform(crop_size=41, mean=(0, 0, 0), std=(1, 1, 1))
    torch.manual_seed(0)
    sizes, sides = set(), set()
    for _ in range(40):
        _, target = transform(image, mask)
        valid = target != 255
        rows, cols = valid.any(1), valid.any(0)
        h, w = int(rows.sum()), int(cols.sum())
        assert h == w and 10 <= h <= 40 and bool(rows[0])
        sizes.add(h)
        if w < 40:
            sides.add("right" if bool(cols[-1]) else "left")
    assert len(sizes) > 10 and sides == {"left", "right"}


def test_collate_pad_pads_images_with_zero_and_masks_with_255() -> None:
    a = (torch.ones(3, 5, 7), torch.zeros(5, 7, dtype=torch.long))
    b = (torch.ones(3, 8, 4), torch.ones(8, 4, dtype=torch.long))
    images, masks = segmentation.collate_pad([a, b])
    assert images.shape == (2, 3, 8, 7) and masks.shape == (2, 8, 7)
    assert images[0, :, 5:].abs().sum() == 0 and (masks[0, 5:] == 255).all() and (masks[0, :5] == 0).all()
    assert (masks[1, :, 4:] == 255).all() and images[1, :, :, :4].min() == 1


def test_build_datasets_synthetic_sizes() -> None:
    args = argparse.Namespace(data="synthetic", synthetic_size=8, seed=0, data_path=Path("unused"), download=False,
                              classes=None, num_classes=None)
    train, val, classes = segmentation.build_datasets(args, crop_size=32, image_size=48)
    assert (len(train), len(val)) == (8, 2) and classes[0] == "background"
    assert train[0][0].shape == (3, 32, 32) and val[0][0].shape == (3, 48, 48)


class TwoClassByBrightness(nn.Module):
    """Class 1 where the image is bright: a model whose right answer is known, for predict tests."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bright = x.mean(1, keepdim=True)
        return torch.cat([-bright, bright], 1) * 10


def test_predict_mask_full_size_and_postprocess_hook() -> None:
    image = Image.new("RGB", (31, 17), (0, 0, 0))
    image.paste((255, 255, 255), (10, 0, 31, 17))
    mask = seg_predict.predict_mask(TwoClassByBrightness(), image, torch.device("cpu"))
    assert mask.shape == (17, 31) and (mask[:, :10] == 0).all() and (mask[:, 10:] == 1).all()
    seen = {}

    def postprocess(probs: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        seen["shapes"] = (tuple(probs.shape), tuple(rgb.shape), float(rgb.max()))
        return probs.flip(1)

    flipped = seg_predict.predict_mask(TwoClassByBrightness(), image, torch.device("cpu"), postprocess=postprocess)
    assert seen["shapes"] == ((1, 2, 17, 31), (1, 3, 17, 31), 255.0)
    assert (flipped == 1 - mask).all()


def test_overlay_tints_only_object_pixels() -> None:
    image = Image.new("RGB", (4, 2), (100, 100, 100))
    mask = np.array([[0, 1, 255, 15], [0, 0, 0, 0]], dtype=np.uint8)
    out = np.asarray(seg_predict.overlay(image, mask, alpha=0.5))
    assert (out[1] == 100).all() and (out[0, 0] == 100).all() and (out[0, 2] == 100).all()
    assert tuple(out[0, 1]) == (114, 50, 50)  # VOC colour of class 1 is (128, 0, 0)
    own = np.asarray(seg_predict.overlay(image, mask, alpha=0.5, class_colours=[(0, 0, 0), (0, 200, 40)]))
    assert tuple(own[0, 1]) == (50, 150, 70) and tuple(own[0, 3]) == tuple(out[0, 3])  # label 15: VOC's still


class ShapeRecorder(nn.Module):
    """A 1×1-conv "segmenter" that records the size of every input it is given."""

    seen: list[tuple[int, int]] = []

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ShapeRecorder.seen.append(tuple(x.shape[-2:]))
        return self.conv(x)


def test_large_images_are_segmented_at_the_working_size_and_the_mask_scaled_back(tmp_path: Path, capsys) -> None:
    """Policy (README, Large images): above --max-megapixels the forward runs at that many pixels, aspect kept, and the
    mask is scaled back (nearest) to the image's size, with a note; at or below it nothing changes."""
    torch.manual_seed(0)
    model = ShapeRecorder(3)
    torch.save({"model": model.state_dict(), "model_name": "rec", "class_names": ["a", "b", "c"], "preprocess": {}},
               tmp_path / "rec.pth")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8)).save(tmp_path / "big.png")
    Image.new("RGB", (100, 100), (200, 10, 10)).save(tmp_path / "small.png")
    ShapeRecorder.seen = []
    args = seg_predict.get_args_parser().parse_args([str(tmp_path / "rec.pth"), str(tmp_path / "big.png"),
                                                     str(tmp_path / "small.png"), "--output-dir", str(tmp_path / "out"),
                                                     "--max-megapixels", "0.01"])
    assert seg_predict.run(args, lambda name, num_classes: ShapeRecorder(num_classes)) == 0
    assert ShapeRecorder.seen == [(81, 122), (100, 100)]  # sqrt(10000 / 60000) · (200, 300), floored; 100×100 as is
    out = capsys.readouterr().out
    assert "segmented at 122x81 (--max-megapixels 0.01), mask scaled back" in out
    assert out.count("segmented at") == 1
    with Image.open(tmp_path / "out" / "big_mask.png") as mask:
        assert mask.size == (300, 200)
        full = np.asarray(mask)
    small = seg_predict.predict_mask(model.eval(), Image.open(tmp_path / "big.png").resize((122, 81), Image.BILINEAR),
                                     torch.device("cpu"))
    assert np.array_equal(full, np.asarray(Image.fromarray(small).resize((300, 200), Image.NEAREST)))
    assert segmentation.working_size(300, 200, 0.06) == (300, 200) and segmentation.working_size(1, 10**7, 1) == (1, 10**6)
    assert segmentation.working_size(10**7, 1, 1) == (10**6, 1)
    args.max_megapixels = 0
    with pytest.raises(UserError, match=r"^--max-megapixels must be positive, got 0$"):
        seg_predict.run(args, lambda name, num_classes: ShapeRecorder(num_classes))


def test_a_data_image_above_the_pixel_cap_is_refused_before_training(tmp_path: Path) -> None:
    voc = write_voc(tmp_path, {"train": SyntheticSegmentation(2, image_size=24)})
    with pytest.raises(UserError, match=rf"^{voc / 'JPEGImages' / 'train_00000.jpg'} is 24x24 \(0\.0 MP\), above "
                                        r"--max-megapixels 0\.0005: training and evaluation read images at full size"):
        segmentation.VOCSegmentationFiles(tmp_path, "train", None, max_megapixels=0.0005)
    assert len(segmentation.VOCSegmentationFiles(tmp_path, "train", None, max_megapixels=24 * 24 / 1e6)) == 2


@pytest.mark.parametrize("folder, flags, model", [
    ("04_dilated_conv", ["--width", "8", "--groups", "1"], None),
    ("06_fcn", ["--backbone", "light", "--model", "fcn8s"], ("fcn8s", {"backbone": "light"})),
    ("07_deeplab", ["--backbone", "resnet18", "--model", "deeplabv3plus"],
     ("deeplabv3plus", {"backbone": "resnet18", "output_stride": 16})),
])
def test_image_size_sets_the_synthetic_images_and_the_output_follows(folder, flags, model, tmp_path) -> None:
    """`--image-size` for 04/06/07: the synthetic images (and the default crop) are that size, and the model's scores
    come back at the input's size."""
    from common import seg_train
    from util import load

    args = load(folder, "train").get_args_parser().parse_args(["--data", "synthetic", "--image-size", "40",
                                                               "--synthetic-size", "4", *flags])
    crop = seg_train.crop_size(args, 321)
    train, val, _ = segmentation.build_datasets(args, crop, image_size=args.image_size)
    assert crop == 40 and train[0][0].shape == (3, 40, 40) and val[0][1].shape == (40, 40)
    if model is None:  # 04: train a step and read the size back from a prediction
        summary = load(folder, "train").main(["--data", "synthetic", "--image-size", "40", "--synthetic-size", "4",
                                              "-b", "2", "--epochs", "1", "--output-dir", str(tmp_path), *flags])
        assert 0 <= summary["metrics"]["miou"] <= 1
        return
    net = load(folder).build_model(model[0], num_classes=6, **model[1]).eval()
    with torch.no_grad():
        assert net(train[0][0][None]).shape == (1, 6, 40, 40)
    with pytest.raises(UserError, match=r"^--image-size must be between 8 and 1024, got 4$"):
        seg_train.crop_size(load(folder, "train").get_args_parser().parse_args(["--image-size", "4"]), 321)


def test_synthetic_task_context_reaches_the_loaders() -> None:
    from util import load

    parser = load("06_fcn", "train").get_args_parser()
    args = parser.parse_args(["--data", "synthetic", "--synthetic-task", "context", "--image-size", "96",
                              "--synthetic-size", "4"])
    train, val, classes = segmentation.build_datasets(args, 96, image_size=96)
    assert classes[-2:] == ["dot_a", "dot_b"] and train[0][0].shape == (3, 96, 96)
    args = parser.parse_args(["--data", "synthetic", "--synthetic-task", "context", "--image-size", "40"])
    with pytest.raises(UserError, match=r"^--synthetic-task context: image_size 40 cannot hold .*raise --image-size$"):
        segmentation.build_datasets(args, 40, image_size=40)


def _own_data(root, classes=("background", "road", "car"), n=4, size=(24, 20)):
    """A --data folder tree: classes.txt, train/ and val/ with images/ and masks/ (grey PNG labels, a 255 border)."""
    import numpy as np
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("\n".join(classes) + "\n\n")
    for split in ("train", "val"):
        for sub in ("images", "masks"):
            (root / split / sub).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            mask = np.zeros(size[::-1], dtype=np.uint8)
            mask[:, size[0] // 2:] = (i % (len(classes) - 1)) + 1
            mask[0] = 255
            Image.fromarray(mask, mode="L").save(root / split / "masks" / f"{i:03d}.png")
            Image.fromarray(np.stack([mask * 40] * 3, -1).astype(np.uint8)).save(root / split / "images" / f"{i:03d}.jpg")


def test_own_data_folder_trains_with_its_own_class_count(tmp_path):
    """The tutorial repo's most asked question: segmentation on your own data with your own classes."""
    import torch

    from util import load

    import numpy as np
    from PIL import Image

    _own_data(tmp_path / "mine")
    (tmp_path / "mine" / "classes.txt").write_text("background\nroad 128 64 128\ncar #00008e\n")
    summary = load("06_fcn", "train").main(["--data", "folder", "--data-path", str(tmp_path / "mine"), "--backbone",
                                            "light", "-b", "2", "--epochs", "1", "--crop-size", "16",
                                            "--output-dir", str(tmp_path / "run")])
    ckpt = torch.load(tmp_path / "run" / "last.pth", weights_only=True)
    assert ckpt["class_names"] == ["background", "road", "car"] and len(summary["metrics"]["iou"]) == 3
    assert ckpt["model"]["score_fr.weight"].shape[0] == 3  # the head has the folder's class count
    assert ckpt["extra"]["palette"] == [[0, 0, 0], [128, 64, 128], [0, 0, 142]]
    # predict.py needs nothing but the checkpoint: the mask and the overlay are drawn in the file's colours
    photo = tmp_path / "mine" / "val" / "images" / "001.jpg"
    assert load("06_fcn", "predict").main([str(tmp_path / "run" / "last.pth"), str(photo),
                                           "--output-dir", str(tmp_path / "pred")]) == 0
    mask_png = Image.open(tmp_path / "pred" / "001_mask.png")
    assert mask_png.getpalette()[:9] == [0, 0, 0, 128, 64, 128, 0, 0, 142]
    rgb = np.asarray(Image.open(photo).convert("RGB"))
    expected = seg_predict.overlay(Image.open(photo), np.asarray(mask_png), 0.5, ckpt["extra"]["palette"])
    assert np.array_equal(np.asarray(Image.open(tmp_path / "pred" / "001_overlay.png")), np.asarray(expected))
    assert rgb.shape[:2] == np.asarray(mask_png).shape


def test_own_data_folder_errors_name_the_problem(tmp_path):
    from common.errors import UserError
    from common.segmentation import SegmentationFolder

    root = tmp_path / "mine"
    _own_data(root)
    assert len(SegmentationFolder(root, "train", None)) == 4
    (root / "val" / "masks" / "002.png").unlink()
    with pytest.raises(UserError, match=r"val/images/002.jpg has no mask .*val/masks/002.png$"):
        SegmentationFolder(root, "val", None)
    (root / "classes.txt").write_text("background\n")
    with pytest.raises(UserError, match=r"classes.txt must name at least two distinct classes, got \['background'\]"):
        SegmentationFolder(root, "train", None)
    (root / "classes.txt").write_text("background\nroad\n")  # the tree's masks use label 2 too: not a class now
    with pytest.raises(UserError, match=r"train/masks/001.png"):
        SegmentationFolder(root, "train", None)
    with pytest.raises(UserError, match=r"test/images not found"):
        SegmentationFolder(root, "test", None)


def test_class_file_takes_names_and_colours_in_three_spellings(tmp_path):
    from common.errors import UserError

    path = tmp_path / "classes.txt"
    path.write_text("background\nroad 128 64 128\n\ncar #00008E\nbus stop 220,20,60\n")
    classes = segmentation.read_class_file(path)
    assert classes == ["background", "road", "car", "bus stop"]
    # background has no colour: VOC's of label 0 (black); the others as written
    assert classes.colours == [(0, 0, 0), (128, 64, 128), (0, 0, 142), (220, 20, 60)]
    assert segmentation.ClassNames(["a", "b", "c"]).colours == [(0, 0, 0), (128, 0, 0), (0, 128, 0)]  # VOC's
    path.write_text("background\nsky 300 0 0\n")
    with pytest.raises(UserError, match=r"classes.txt:2: 'sky 300 0 0' is not 'name' or 'name R G B'"):
        segmentation.read_class_file(path)
    path.write_text("".join(f"c{i}\n" for i in range(256)))
    with pytest.raises(UserError, match=r"names 256 classes; at most 255 fit in 8-bit masks \(255 = void\)$"):
        segmentation.read_class_file(path)
    with pytest.raises(UserError, match=r"missing.txt not found: list the class names there"):
        segmentation.read_class_file(tmp_path / "missing.txt")


def test_num_classes_and_classes_decide_the_label_count_for_every_layout(tmp_path):
    from common.errors import UserError
    from util import load

    parser = load("06_fcn", "train").get_args_parser()

    def classes_of(*flags):
        return segmentation.build_datasets(parser.parse_args(list(flags)), 16)[2]

    _own_data(tmp_path / "mine")  # classes.txt names 3; masks use labels 0-2 and 255
    mine = ["--data", "folder", "--data-path", str(tmp_path / "mine")]
    assert classes_of(*mine) == ["background", "road", "car"] == classes_of(*mine, "--num-classes", "3")
    with pytest.raises(UserError, match=r"^--num-classes 4 but .*mine/classes.txt names 3 classes$"):
        classes_of(*mine, "--num-classes", "4")
    (tmp_path / "mine" / "classes.txt").unlink()
    with pytest.raises(UserError, match=r"classes.txt has no class names: add --classes FILE .* or --num-classes N$"):
        classes_of(*mine)
    assert classes_of(*mine, "--num-classes", "3") == ["class_0", "class_1", "class_2"]
    with pytest.raises(UserError, match=r"train/masks/00\d.png"):  # label 2 is no class of 2
        classes_of(*mine, "--num-classes", "2")
    names = tmp_path / "names.txt"
    names.write_text("ground\nlane #ff0000\nvan\n")
    assert classes_of(*mine, "--classes", str(names)).colours[1] == (255, 0, 0)
    # VOC's layout with other classes: the synthetic VOC tree holds labels 0-5
    write_voc(tmp_path / "voc", {"train": SyntheticSegmentation(2, image_size=24),
                                 "val": SyntheticSegmentation(1, image_size=24, split="val")})
    voc = ["--data", "voc", "--data-path", str(tmp_path / "voc")]
    assert classes_of(*voc) == list(segmentation.VOC_CLASSES)
    assert classes_of(*voc, "--num-classes", "6") == [f"class_{i}" for i in range(6)]
    with pytest.raises(UserError, match=r"SegmentationClass/train_0000\d.png"):
        classes_of(*voc, "--classes", str(names))  # 3 classes, labels up to 5
    with pytest.raises(UserError, match=r"^--classes and --num-classes are for --data voc\|folder"):
        classes_of("--data", "synthetic", "--num-classes", "6")
    with pytest.raises(UserError, match=r"^--num-classes must be between 2 and 255 \(255 = void\), got 1$"):
        classes_of(*voc, "--num-classes", "1")


def test_resampling_only_the_crop_equals_resizing_the_mask_then_cropping() -> None:
    """SegTrainTransform reads the mask's crop by nearest_index: exactly torchvision's NEAREST resize, then the crop."""
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        h, w = torch.randint(5, 400, (2,), generator=g).tolist()
        out_h, out_w = torch.randint(1, 900, (2,), generator=g).tolist()
        out_h = 2 * h if out_h % 7 == 0 else (h if out_h % 11 == 0 else out_h)  # the exact cases too
        mask = torch.randint(0, 255, (1, h, w), dtype=torch.uint8, generator=g)
        full = TF.resize(mask, [out_h, out_w], InterpolationMode.NEAREST)[0]
        top, left = int(torch.randint(0, out_h, (1,), generator=g)), int(torch.randint(0, out_w, (1,), generator=g))
        rows = segmentation.nearest_index(top, min(out_h, top + 40), h, out_h)
        cols = segmentation.nearest_index(left, min(out_w, left + 40), w, out_w)
        assert torch.equal(mask[0][rows][:, cols], full[top:top + 40, left:left + 40])
