"""The notes' tensorboard (add_scalar, add_image with numpy and tensor data) and transforms scripts as written, made
runnable with the smallest fixes, one after the other.

    python 02_tensorboard_transforms/notes_code.py                 # offline: a synthetic picture at the notes' paths
    python 02_tensorboard_transforms/notes_code.py --data files --data-path .   # your dataset/... and images/... files
    tensorboard --logdir runs/02_tensorboard_transforms/notes_code/logs

The four scripts keep the notes' names, tags, values and prints, including two slips that do not stop them running:
`add_scalar("y=2x", i, i)` plots y = x, and the Resize2 tag logs `img_resize` (the first Resize) instead of
`img_resize_2`. predict.py is the repo's version (tags numpy_HWC, tensor_CHW, ToTensor, Normalize, Resize, Resize2,
RandomCrop, y=2x); tests/test_notes_code.py checks which of the notes' events equal the repo's and where they differ.
Every change is marked `# notes: <the original line>` with the reason. The notes' `add_image` signature block is
documentation, not a script, and is not repeated here.

Imports only torch, torchvision, tensorboard, numpy (the notes' `np.array`) and PIL, plus `common/synthetic.py`
(SyntheticShapes) for the offline picture. With `--data synthetic` (default) a 64×128 picture (a disc beside a
square: not square, so Resize((512, 512)) and Resize(512) differ) is written to both of the notes' image paths under
`--output-dir`; `--data files` reads them under `--data-path`. Events go to `<--output-dir>/logs` (the notes' "logs").
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.tensorboard import SummaryWriter
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common.synthetic import SyntheticShapes  # noqa: E402

ANTS_IMAGE = Path("dataset/train/train/ants_image/0013035.jpg")  # the notes' add_image paths
PHOTO = Path("images/8697bca9d9655a8a2f676e36fc1a36f1.jpg")  # the notes' transforms path


def write_synthetic(data_path: Path, seed: int) -> None:
    """One H×2H picture (disc | square) saved at both of the notes' image paths under `data_path`."""
    shapes = SyntheticShapes(2, image_size=64, num_classes=2, seed=seed, split="train")
    picture = Image.fromarray(np.concatenate(list(shapes.data), axis=1))
    for path in (ANTS_IMAGE, PHOTO):
        (data_path / path).parent.mkdir(parents=True, exist_ok=True)
        picture.save(data_path / path, quality=95)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="synthetic", choices=("synthetic", "files"),
                        help=f"synthetic: write a picture to the notes' paths under --output-dir; files: read "
                             f"{ANTS_IMAGE} and {PHOTO} under --data-path (default: %(default)s)")
    parser.add_argument("--data-path", type=Path, default=Path("."),
                        help="with --data files: the folder the notes' paths are relative to (default: %(default)s)")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/02_tensorboard_transforms/notes_code"),
                        help="events go to <output-dir>/logs (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic picture (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> dict:
    """Run the notes' four scripts in order; returns the log folder and the transformed images."""
    args = get_args_parser().parse_args(argv)
    data_path = args.output_dir if args.data == "synthetic" else args.data_path
    if args.data == "synthetic":  # added: offline stand-ins for the notes' two pictures
        write_synthetic(data_path, args.seed)
    logs = str(args.output_dir / "logs")

    # add_scalar
    # notes: writer = SummaryWriter("logs")  (the same folder in all four scripts; under --output-dir here)
    writer = SummaryWriter(logs)
    # writer.add_image()
    # y=x
    for i in range(100):
        writer.add_scalar("y=2x",i,i)

    writer.close()

    # add_image，使用numpy型数据
    # notes: writer = SummaryWriter("logs")
    writer = SummaryWriter(logs)
    # notes: image_path="dataset/train/train/ants_image/0013035.jpg"
    image_path=str(data_path / ANTS_IMAGE)
    img_PIL = Image.open(image_path)
    img_array=np.array(img_PIL)
    writer.add_image("test",img_array,1,dataformats='HWC')
    # added: the notes never close this writer; its events are written when the process exits, so a later script in
    # the same process (or a test reading the folder) could miss them
    writer.close()

    # add_image，使用tensor型数据
    # notes: img_path="dataset/train/train/ants_image/0013035.jpg"
    img_path=str(data_path / ANTS_IMAGE)
    img = Image.open(img_path)

    # notes: writer = SummaryWriter("logs")
    writer = SummaryWriter(logs)

    tensor_trans= transforms.ToTensor();
    tensor_img= tensor_trans(img);

    writer.add_image("TensorImage",tensor_img)
    writer.close()

    # transforms: ToTensor, Normalize, Resize, Compose
    # notes: writer = SummaryWriter("logs")
    writer = SummaryWriter(logs)
    # notes: img =Image.open("images/8697bca9d9655a8a2f676e36fc1a36f1.jpg")
    img =Image.open(data_path / PHOTO)
    print(img)

    #Tensor
    trans_totensor=transforms.ToTensor()
    img_tensor=trans_totensor(img)
    writer.add_image("Totensor",img_tensor)

    #Normalize
    trans_norm=transforms.Normalize([0.5,0.5,0.5],[0.5,0.5,0.5])
    img_norm=trans_norm(img_tensor)
    writer.add_image("Normalize",img_norm)

    #Resize1
    print(img.size)
    trans_resize=transforms.Resize((512,512))
    img_resize=trans_resize(img)
    img_resize=trans_totensor(img_resize)
    writer.add_image("Resize",img_resize)
    print(img_resize)

    #Resize2(use Compose)
    trans_resize_2=transforms.Resize(512)
    trans_Compose=transforms.Compose([trans_resize_2,trans_totensor])
    img_resize_2=trans_Compose(img)
    writer.add_image("Resize2",img_resize)  # kept as in the notes: logs img_resize, so Resize2 shows the first Resize

    writer.close()
    return {"logdir": Path(logs), "img_tensor": img_tensor, "img_norm": img_norm, "img_resize": img_resize,
            "img_resize_2": img_resize_2}


if __name__ == "__main__":
    main()
