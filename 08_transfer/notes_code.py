"""The notes' 保存模型/加载模型 (method 1 and 2) and 迁移学习 (the 第一步 … 第四步 state_dict update, 冻结训练) code as
written, made runnable with the smallest fixes.

    python 08_transfer/notes_code.py                          # vgg16, as in the notes: two 528 MB files, ~1 min
    python 08_transfer/notes_code.py --arch mobilenet_v2      # the same code on a 14 MB net, seconds
    python 08_transfer/notes_code.py --model-path my_pretrained.pth --num-classes 2

In order: method 1 saves and loads the whole pickled model, method 2 its state_dict into a fresh vgg16; then a new
task's model (`--num-classes`, default 2: ants/bees) takes every tensor of that file whose shape fits (the 四步, kept as
the function `load_pretrained(model, model_path, device)` because the notes' snippet uses those three names without
defining them), and `net.features` is frozen. The notes' names are kept; every change is marked
`# notes: <the original line>` with the reason. common/weights.py is the repo's version (`load_matching`: no KeyError on
keys the model lacks, a report of what was skipped; `freeze`: BatchNorm stays in eval mode); tests/test_notes_code.py
checks that both load the same tensors where the notes' version works.

No data is involved, so nothing is downloaded: the "pretrained" file is method 2's (random weights) unless
`--model-path` names another state_dict file. Imports only torch, torchvision and numpy (the notes' `np.shape`). Files
go to `--output-dir`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn

ARCHS = ("vgg16", "mobilenet_v2")  # torchvision nets with the `.features` that 冻结训练 freezes


def load_pretrained(model: nn.Module, model_path: str | Path, device: torch.device) -> dict[str, torch.Tensor]:
    """The notes' 第一步 … 第四步 verbatim: every tensor of `model_path` whose name and shape match goes into `model`, the
    rest keep their initialisation. A key the model lacks raises KeyError (`model_dict[k]`). Returns the kept tensors."""
    # 第一步：读取当前模型参数
    model_dict = model.state_dict()
    # 第二步：读取预训练模型
    pretrained_dict = torch.load(model_path, map_location = device)
    pretrained_dict = {k: v for k, v in pretrained_dict.items() if np.shape(model_dict[k]) == np.shape(v)}
    # 第三步：使用预训练的模型更新当前模型参数
    model_dict.update(pretrained_dict)
    # 第四步：加载模型参数
    model.load_state_dict(model_dict)
    return pretrained_dict  # added: what was loaded, so the caller (and the test) can see it


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="vgg16", choices=ARCHS,
                        help="the notes' vgg16, or mobilenet_v2 (same code, 40× smaller files) (default: %(default)s)")
    parser.add_argument("--num-classes", type=int, default=2,
                        help="classes of the new task's model, whose last layer therefore does not load "
                             "(default: %(default)s)")
    parser.add_argument("--model-path", type=Path, default=None,
                        help="the pretrained state_dict for the 四步 (default: the method 2 file written here)")
    parser.add_argument("--device", default="cpu", help="map_location of the 四步's torch.load (default: %(default)s)")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/08_transfer/notes_code"),
                        help="where the .pth files are written (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> dict:
    """Save/load, then the 四步 and 冻结训练; returns the models and what the 四步 loaded."""
    args = get_args_parser().parse_args(argv)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    # notes: "vgg16_method1.pth"  (one name per --arch, under --output-dir)
    method1 = str(args.output_dir / f"{args.arch}_method1.pth")

    # 保存模型/加载模型
    # added: the notes save a `model` they never define; the tutorial's is an untrained vgg16
    model = getattr(torchvision.models, args.arch)(weights=None)
    torch.save(model,method1)#保留模型结构和参数
    # notes: torch.load(model,"vgg16_method1.pth")#加载
    # the arguments are the wrong way round (torch.load(f, map_location)) and the result was dropped; since torch 2.6
    # torch.load refuses pickled modules unless weights_only=False, which runs the file's code: only for your own files
    model = torch.load(method1, weights_only=False)#加载

    # kept as in the notes: method 2 reuses method 1's file name, so method 1's file is overwritten
    torch.save(model.state_dict(),method1)#字典形式保留模型参数
    # notes: vgg16=torchvision.model.vgg16(pretrained=False)#加载
    # the module is torchvision.models; pretrained= is deprecated since torchvision 0.13 (weights=None says the same)
    vgg16=getattr(torchvision.models, args.arch)(weights=None)#加载
    vgg16.load_state_dict(torch.load(method1))

    # 迁移学习
    # added: the new task's network (the notes' `model`), the pretrained file and the device the snippet assumes
    model = getattr(torchvision.models, args.arch)(weights=None, num_classes=args.num_classes)
    model_path = args.model_path or method1
    device = torch.device(args.device)
    pretrained_dict = load_pretrained(model, model_path, device)
    print(f"loaded {len(pretrained_dict)} of {len(model.state_dict())} tensors from {model_path}")  # added

    #冻结训练（保存预训练模型的参数）
    net = model  # added: the notes freeze `net`, the model the 四步 just filled
    for param in net.features.parameters():
       param.requires_grad = False
    return {"vgg16": vgg16, "model": model, "pretrained_dict": pretrained_dict, "model_path": Path(model_path)}


if __name__ == "__main__":
    main()
