"""The notes' tensorboard and transforms demos on one image, done properly, plus a PNG contact sheet of every stage.

    python 02_tensorboard_transforms/predict.py photo.jpg
    tensorboard --logdir runs/02_tensorboard_transforms/demo          # Images and Scalars tabs
    python 02_tensorboard_transforms/predict.py photo.jpg --checkpoint runs/02_tensorboard_transforms/best.pth

Written to TensorBoard, one tag per stage:
  numpy_HWC    np.array(img), H×W×3 uint8: needs dataformats='HWC' (add_image expects C×H×W by default)
  tensor_CHW   the same pixels as a C×H×W uint8 tensor (transforms.PILToTensor): the default dataformats
  ToTensor     C×H×W float in [0, 1]
  Normalize    Normalize([0.5]*3, [0.5]*3): (x - 0.5) / 0.5 maps [0, 1] to [-1, 1]; TensorBoard clips what is below 0,
               so dark areas turn black (the histograms ToTensor/values and Normalize/values show the real ranges)
  Resize       Resize((512, 512)): exactly 512×512, the aspect ratio is lost
  Resize2      Compose([Resize(512), ToTensor()]): the short side becomes 512, the aspect ratio is kept
               (the notes log img_resize under this tag by mistake, so their two Resize images look the same)
  RandomCrop   Compose([RandomCrop(N), ToTensor()]) at steps 0..K-1: a different N×N window each time
  y=2x         the notes' scalar, with y really 2x (the notes write add_scalar("y=2x", i, i), which plots y=x)
  Grad-CAM     with --checkpoint --cam: where the trained network found its top class (common/cam.py), also written
               as <logdir>/<image stem>_cam.png
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.tensorboard import SummaryWriter
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common.cam import cam_overlay, grad_cam  # noqa: E402
from common.cli import ensure_writable_dir, resolve_device  # noqa: E402
from common.errors import UserError, cli_main  # noqa: E402
from common.images import READ_NOTE, open_image  # noqa: E402
from common.predict import load_for_prediction, preprocess_transform  # noqa: E402
from model import build_model  # noqa: E402

THUMB_HEIGHT = 128
SHEET_CROPS = 3  # RandomCrop samples shown on the contact sheet (TensorBoard gets all of them)


@dataclass
class Stage:
    tag: str
    image: np.ndarray | torch.Tensor  # numpy H×W×C uint8, or a C×H×W tensor (uint8 or float)
    step: int = 0

    @property
    def dataformats(self) -> str:
        return "HWC" if isinstance(self.image, np.ndarray) else "CHW"

    def caption(self) -> str:
        dims = "x".join(map(str, self.image.shape))
        kind = "uint8" if self.image.dtype in (np.uint8, torch.uint8) else \
            f"[{float(self.image.min()):.2g}, {float(self.image.max()):.2g}]"
        step = f" #{self.step}" if self.tag == "RandomCrop" else ""
        return f"{self.tag}{step}\n{dims} {self.dataformats}\n{kind}"


def transform_stages(img: Image.Image, crop_size: int, crops: int) -> list[Stage]:
    """Every stage of the notes' demo, in order; RandomCrop draws from torch's global RNG (seed it first)."""
    trans_totensor = transforms.ToTensor()
    img_tensor = trans_totensor(img)
    img_norm = transforms.Normalize([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])(img_tensor)
    img_resize = trans_totensor(transforms.Resize((512, 512))(img))
    img_resize_2 = transforms.Compose([transforms.Resize(512), trans_totensor])(img)
    trans_random = transforms.Compose([transforms.RandomCrop(crop_size), trans_totensor])
    return [Stage("numpy_HWC", np.array(img)), Stage("tensor_CHW", transforms.PILToTensor()(img)),
            Stage("ToTensor", img_tensor), Stage("Normalize", img_norm), Stage("Resize", img_resize),
            Stage("Resize2", img_resize_2), *(Stage("RandomCrop", trans_random(img), i) for i in range(crops))]


def write_tensorboard(stages: list[Stage], logdir: Path) -> None:
    with SummaryWriter(str(logdir)) as writer:
        for stage in stages:
            writer.add_image(stage.tag, stage.image, stage.step, dataformats=stage.dataformats)
            if stage.tag in ("ToTensor", "Normalize"):
                writer.add_histogram(f"{stage.tag}/values", stage.image, stage.step)
        for i in range(100):
            writer.add_scalar("y=2x", 2 * i, i)


def to_display(stage: Stage) -> Image.Image:
    """What TensorBoard shows: H×W×C uint8, floats scaled by 255 and clipped to [0, 255]."""
    image = stage.image
    if isinstance(image, torch.Tensor):
        image = image.permute(1, 2, 0).numpy()
    if image.dtype != np.uint8:
        image = (image.astype(np.float32) * 255).clip(0, 255).astype(np.uint8)
    return Image.fromarray(image)


def contact_sheet(stages: list[Stage], columns: int = 5) -> Image.Image:
    """All stages as thumbnails of equal height, captioned with tag, shape, layout and value range."""
    thumbs = []
    for stage in stages:
        img = to_display(stage)
        width = max(1, round(img.width * THUMB_HEIGHT / img.height))
        thumbs.append((img.resize((width, THUMB_HEIGHT), Image.BILINEAR), stage.caption()))
    cell_w, cell_h, pad = max(t.width for t, _ in thumbs) + 12, THUMB_HEIGHT + 52, 6
    rows = -(-len(thumbs) // columns)
    sheet = Image.new("RGB", (min(columns, len(thumbs)) * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (thumb, caption) in enumerate(thumbs):
        x, y = (i % columns) * cell_w + pad, (i // columns) * cell_h + pad
        sheet.paste(thumb, (x, y))
        draw.multiline_text((x, y + THUMB_HEIGHT + 3), caption, fill="black", spacing=2)
    return sheet


def classify(image: Image.Image, checkpoint: Path, device: str, topk: int, cam: bool = False
             ) -> tuple[list[tuple[str, float]], Image.Image | None]:
    """(top-k (class, probability), the Grad-CAM overlay of the top class or None without `cam`)."""
    model, classes, preprocess = load_for_prediction(checkpoint, build_model)
    dev = resolve_device(device)
    x = preprocess_transform(preprocess)(image)[None].to(dev)
    with torch.inference_mode():
        probs = model.to(dev)(x).float().softmax(1)[0]
    top = probs.topk(min(topk, len(classes)))
    overlay = cam_overlay(image, grad_cam(model, x)[0].cpu()) if cam else None
    return [(classes[i], p) for p, i in zip(top.values.tolist(), top.indices.tolist())], overlay


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", type=Path, help=f"any image file (jpg, png, ...); {READ_NOTE}")
    parser.add_argument("--logdir", type=Path, default=Path("runs/02_tensorboard_transforms/demo"),
                        help="TensorBoard folder (default: %(default)s)")
    parser.add_argument("--sheet", type=Path, default=None, help="contact sheet PNG (default: <logdir>/contact_sheet.png)")
    parser.add_argument("--crop-size", type=int, default=256,
                        help="RandomCrop size; must fit in the image (default: %(default)s)")
    parser.add_argument("--crops", type=int, default=10, help="how many RandomCrop samples to log (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed for RandomCrop (default: %(default)s)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="also classify the image with a train.py checkpoint")
    parser.add_argument("--topk", type=int, default=3, help="classes to print with --checkpoint (default: %(default)s)")
    parser.add_argument("--cam", action="store_true",
                        help="with --checkpoint: log and write the Grad-CAM of the top class (<logdir>/<stem>_cam.png)")
    parser.add_argument("--device", default="cpu", help="device for --checkpoint (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = get_args_parser().parse_args(argv)
    img = open_image(args.image)
    if not 1 <= args.crop_size <= min(img.size):
        raise UserError(f"--crop-size {args.crop_size} does not fit {args.image} ({img.width}×{img.height}); "
                        f"use at most {min(img.size)}")
    if args.crops < 1 or args.topk < 1:
        raise UserError("--crops and --topk must be at least 1")
    if args.cam and args.checkpoint is None:
        raise UserError("--cam explains a trained network's prediction: add --checkpoint")
    sheet_path = args.sheet or args.logdir / "contact_sheet.png"
    if sheet_path.is_dir():
        raise UserError(f"--sheet {sheet_path} is a folder; give a .png file name")
    ensure_writable_dir(args.logdir, "--logdir")
    ensure_writable_dir(sheet_path.parent, "--sheet")
    prediction, cam = (classify(img, args.checkpoint, args.device, args.topk, args.cam) if args.checkpoint
                       else (None, None))
    torch.manual_seed(args.seed)
    stages = transform_stages(img, args.crop_size, args.crops)
    if cam is not None:
        stages.append(Stage("Grad-CAM", np.array(cam)))
    write_tensorboard(stages, args.logdir)
    cam_path = args.logdir / f"{args.image.stem}_cam.png" if cam is not None else None
    if cam_path is not None:
        cam.save(cam_path)
    sheet_path.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet([s for s in stages if s.tag != "RandomCrop" or s.step < SHEET_CROPS]).save(sheet_path)
    print(f"{args.image} ({img.width}×{img.height}): {len(stages)} images and the y=2x scalar in {args.logdir}; "
          f"contact sheet {sheet_path}")
    if prediction is not None:
        print(f"{args.image}: " + ", ".join(f"{name} ({p:.3f})" for name, p in prediction))
    return {"stages": stages, "sheet": sheet_path, "prediction": prediction, "cam": cam_path}


if __name__ == "__main__":
    cli_main(main)
