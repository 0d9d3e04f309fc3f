"""02_tensorboard_transforms: the notes' TensorBoard demo read back from the event files, the transforms' sizes and ranges,
and train.py's scalars, input grids, graph and weight histograms."""
import io

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import HISTOGRAMS, IMAGES, SCALARS, EventAccumulator

from common.errors import UserError
from common.predict import preprocess_transform
from util import load


@pytest.fixture(scope="module")
def predict():
    return load("02_tensorboard_transforms", "predict")


@pytest.fixture(scope="module")
def train():
    return load("02_tensorboard_transforms", "train")


def events(logdir):
    """Every event kept (the default keeps only 4 images per tag); no purging, since a run writes several files."""
    return EventAccumulator(str(logdir), size_guidance={IMAGES: 0, SCALARS: 0, HISTOGRAMS: 0},
                            purge_orphaned_data=False).Reload()


def decode(image_event):
    return np.array(Image.open(io.BytesIO(image_event.encoded_image_string)).convert("RGB"))


def gradient(width=160, height=96):
    """Every pixel unique (red = column, green = row), with pure black and pure white corners."""
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack([xx * 255 // (width - 1), yy * 255 // (height - 1), np.full_like(xx, 90)], -1).astype(np.uint8)
    img[0, 0], img[-1, -1] = 0, 255
    return img


def test_demo_event_files(predict, tmp_path):
    pixels = gradient()
    path = tmp_path / "photo.png"
    Image.fromarray(pixels).save(path)
    result = predict.main([str(path), "--logdir", str(tmp_path / "tb"), "--crop-size", "48", "--crops", "4"])
    acc = events(tmp_path / "tb")

    ys = acc.Scalars("y=2x")
    assert [e.step for e in ys] == list(range(100)) and all(e.value == 2 * e.step for e in ys)

    sizes = {tag: [(e.width, e.height) for e in acc.Images(tag)] for tag in acc.Tags()["images"]}
    assert sizes == {"numpy_HWC": [(160, 96)], "tensor_CHW": [(160, 96)], "ToTensor": [(160, 96)],
                     "Normalize": [(160, 96)], "Resize": [(512, 512)],
                     "Resize2": [(853, 512)],  # short side 96 → 512, long side 160 · 512/96 = 853
                     "RandomCrop": [(48, 48)] * 4}
    # HWC numpy and CHW tensor both arrive as the original picture (a wrong dataformats would transpose or garble it)
    for tag in ("numpy_HWC", "tensor_CHW", "ToTensor"):
        assert np.array_equal(decode(acc.Images(tag)[0]), pixels), tag

    # Normalize maps [0, 1] to [-1, 1]: exactly -1 and 1 at the black and white pixels
    for tag, low, high in (("ToTensor/values", 0.0, 1.0), ("Normalize/values", -1.0, 1.0)):
        hist = acc.Histograms(tag)[0].histogram_value
        assert (hist.min, hist.max) == (low, high), tag
    stages = {s.tag: s.image for s in result["stages"] if s.tag != "RandomCrop"}
    assert torch.allclose(stages["Normalize"], stages["ToTensor"] * 2 - 1)

    # each RandomCrop is a 48×48 window of the original, at different places
    corners = set()
    for e in acc.Images("RandomCrop"):
        crop = decode(e)
        top = int(np.argmax(pixels[:, 0, 1] == crop[0, 0, 1]))
        left = int(np.argmax(pixels[0, :, 0] == crop[0, 0, 0]))
        assert np.array_equal(crop, pixels[top:top + 48, left:left + 48])
        corners.add((top, left))
    assert [e.step for e in acc.Images("RandomCrop")] == [0, 1, 2, 3] and len(corners) > 1

    with Image.open(result["sheet"]) as sheet:
        assert sheet.format == "PNG" and sheet.height > 2 * predict.THUMB_HEIGHT


def test_resize_keeps_or_drops_the_aspect_ratio(predict):
    portrait = Image.new("RGB", (90, 150), (10, 20, 30))
    stages = {s.tag: s.image for s in predict.transform_stages(portrait, crop_size=32, crops=1)}
    assert stages["Resize"].shape == (3, 512, 512)
    assert stages["Resize2"].shape == (3, 853, 512)  # width (the short side) 512, height 150 · 512/90
    assert stages["RandomCrop"].shape == (3, 32, 32)
    assert stages["numpy_HWC"].shape == (150, 90, 3) and stages["tensor_CHW"].shape == (3, 150, 90)


def test_demo_bad_input(predict, tmp_path):
    small = tmp_path / "small.png"
    Image.new("RGB", (40, 30)).save(small)
    with pytest.raises(UserError, match=r"--crop-size 256 does not fit .*small.png \(40×30\); use at most 30"):
        predict.main([str(small), "--logdir", str(tmp_path / "tb")])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match=r"broken.jpg is not a readable image"):
        predict.main([str(broken), "--logdir", str(tmp_path / "tb")])
    assert not (tmp_path / "tb").exists()


def test_train_augmentation_is_random_and_eval_matches_predict(train):
    train_tf, eval_tf = train.build_transforms(32)
    img = Image.fromarray(gradient(70, 50))
    torch.manual_seed(0)
    a, b = train_tf(img), train_tf(img)
    assert a.shape == b.shape == (3, 32, 32) and not torch.equal(a, b)
    x = eval_tf(img)
    assert torch.equal(x, eval_tf(img)) and x.min() >= -1 and x.max() <= 1
    meta = {"resize": train.resize_size(32), "crop": [32, 32], "mean": train.MEAN, "std": train.STD}
    assert (preprocess_transform(meta)(img) - x).abs().mean() < 0.02  # predict.py sees what evaluation saw


def test_imagefolder_data(train, tmp_path):
    from common.synthetic import SyntheticShapes, write_imagefolder

    for split in ("train", "val"):
        write_imagefolder(SyntheticShapes(6, image_size=40, num_classes=3, split=split), tmp_path / split)
    args = train.get_args_parser().parse_args(["--data", "imagefolder", "--data-path", str(tmp_path)])
    train_set, val_set, classes = train.load_data(args)
    assert classes == ["disk", "square", "triangle"] and len(train_set) == len(val_set) == 6
    img, label = train_set[5]
    assert img.size == (40, 40) and img.mode == "RGB" and label == 2
    args.data_path = tmp_path / "missing"
    with pytest.raises(UserError, match=r"missing/train not found"):
        train.load_data(args)


def test_train_logs_scalars_inputs_graph_and_weights(train, predict, tmp_path, capsys):
    out = tmp_path / "run"
    summary = train.main(["--data", "synthetic", "--synthetic-size", "128", "--epochs", "2", "-b", "32",
                          "--print-freq", "2", "--output-dir", str(out)])
    acc = events(out)
    tags = acc.Tags()
    assert {"train_loss", "lr", "test_loss", "test_accuracy"} <= set(tags["scalars"])
    assert [e.step for e in acc.Scalars("test_accuracy")] == [0, 1]

    grids = {tag: acc.Images(tag) for tag in ("inputs/train_augmented", "inputs/eval")}
    for tag, (event,) in grids.items():  # 32 images of 32×32 in rows of 8, make_grid's 2 px padding
        assert (event.width, event.height) == (8 * 34 + 2, 4 * 34 + 2), tag
    assert not np.array_equal(decode(grids["inputs/train_augmented"][0]), decode(grids["inputs/eval"][0]))

    assert tags["graph"]
    ckpt = torch.load(summary["checkpoint"], weights_only=True)
    model = load("02_tensorboard_transforms").build_model("convnet")
    names = [name for name, _ in model.named_parameters()]
    assert {f"weights/{name}" for name in names} <= set(tags["histograms"])
    for name in names:
        hists = acc.Histograms(f"weights/{name}")
        assert [h.step for h in hists] == [0, 2], name
        final = hists[-1].histogram_value
        assert (final.min, final.max) == pytest.approx((ckpt["model"][name].min().item(),
                                                        ckpt["model"][name].max().item())), name
    fc_start, fc_end = acc.Histograms("weights/fc.weight")
    assert fc_start.histogram_value.sum_squares != fc_end.histogram_value.sum_squares  # training moved the weights

    photo = tmp_path / "shape.png"
    Image.fromarray(gradient(60, 60)).save(photo)
    capsys.readouterr()
    result = predict.main([str(photo), "--logdir", str(tmp_path / "tb"), "--crop-size", "32", "--crops", "1",
                           "--checkpoint", str(summary["checkpoint"]), "--topk", "3"])
    names, probs = zip(*result["prediction"])
    assert set(names) <= set(ckpt["class_names"]) and len(names) == 3 and list(probs) == sorted(probs, reverse=True)
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"{photo}: {names[0]} (")
