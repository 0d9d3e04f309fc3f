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
from util import leaf_layers, load


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
                           "--checkpoint", str(summary["checkpoint"]), "--topk", "3", "--cam"])
    names, probs = zip(*result["prediction"])
    assert set(names) <= set(ckpt["class_names"]) and len(names) == 3 and list(probs) == sorted(probs, reverse=True)
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"{photo}: {names[0]} (")
    # --cam: the top class's Grad-CAM over the photo, as a PNG at the photo's size and as a TensorBoard image
    assert result["cam"] == tmp_path / "tb" / "shape_cam.png" and Image.open(result["cam"]).size == (60, 60)
    (cam_event,) = events(tmp_path / "tb").Images("Grad-CAM")
    assert (cam_event.width, cam_event.height) == (60, 60)
    assert np.array_equal(decode(cam_event), np.asarray(Image.open(result["cam"]).convert("RGB")))
    with pytest.raises(UserError, match="--cam explains a trained network's prediction: add --checkpoint"):
        predict.main([str(photo), "--logdir", str(tmp_path / "tb2"), "--crop-size", "32", "--cam"])
    assert not (tmp_path / "tb2").exists()


# ------------------------------------------------------------------------------------------------------ model.py
def test_convnet_layers_defaults_and_build_model():
    """Two stages of two conv 3×3 (padding 1, no bias) → BN → ReLU pairs and a 2×2 max-pool, widths 32 and 64, then
    global average pool, dropout 0.2 and one linear layer; 10 classes by default, named blocks for the Graphs tab."""
    m = load("02_tensorboard_transforms")

    def pair(name, cin, cout):
        return [(f"{name}.0", "Conv2d", cin, cout, (3, 3), (1, 1), (1, 1), 1, False), (f"{name}.1", "BatchNorm2d", cout),
                (f"{name}.2", "ReLU")]

    expected = [*pair("stage1.0", 3, 32), *pair("stage1.1", 32, 32), ("stage1.2", "MaxPool2d", 2, 2),
                *pair("stage2.0", 32, 64), *pair("stage2.1", 64, 64), ("stage2.2", "MaxPool2d", 2, 2),
                ("pool", "AdaptiveAvgPool2d", 1), ("dropout", "Dropout", 0.2), ("fc", "Linear", 64, 10, True)]
    assert leaf_layers(m.ConvNet()) == expected
    assert leaf_layers(m.build_model("convnet")) == expected
    built = m.build_model("convnet", 3, width=8, dropout=0.5)  # num_classes positional, kwargs reach ConvNet
    assert leaf_layers(built)[-2:] == [("dropout", "Dropout", 0.5), ("fc", "Linear", 16, 3, True)]
    with pytest.raises(ValueError, match=r"^unknown model 'tudui'; choose from \('convnet',\)$"):
        m.build_model("tudui")


def test_convnet_forward_pools_globally_then_dropout_then_fc():
    """N×3×H×W → N×10 at any size; stage1 and stage2 each halve H and W; in eval mode the logits are fc of the
    per-channel mean of stage2's output, in train mode dropout zeroes some of those means first."""
    m = load("02_tensorboard_transforms")
    torch.manual_seed(0)
    model = m.ConvNet().eval()
    x = torch.randn(2, 3, 20, 12)
    with torch.no_grad():
        out1 = model.stage1(x)
        out2 = model.stage2(out1)
        logits = model(x)
    assert out1.shape == (2, 32, 10, 6) and out2.shape == (2, 64, 5, 3)
    torch.testing.assert_close(logits, model.fc(out2.mean((2, 3))))
    seen = []
    model.fc.register_forward_hook(lambda mod, i, o: seen.append(i[0]))
    model.train()
    model.stage1.eval(), model.stage2.eval()  # BatchNorm as in evaluation: only dropout differs
    with torch.no_grad():
        model(x)
    dropped = seen[-1]
    kept = dropped != 0
    assert not kept.all() and kept.any()
    torch.testing.assert_close(dropped[kept], out2.mean((2, 3))[kept] / 0.8)
