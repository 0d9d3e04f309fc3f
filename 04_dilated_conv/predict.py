"""Segment images with a checkpoint from 04_dilated_conv/train.py; with --receptive-field, also draw the model's gridding.

    python 04_dilated_conv/predict.py runs/04_dilated_conv/best.pth shapes.png
    python 04_dilated_conv/predict.py runs/04_dilated_conv/best.pth shapes.png --receptive-field

Per image: a VOC-palette mask PNG and an overlay PNG. --receptive-field writes `receptive_field_<model>.png`: for the
checkpoint's whole conv stack (stem and body, all weights set to 1), how many paths lead from each input pixel to one
output pixel; black squares are input pixels the output never sees (the notes' gridding effect).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common.errors import cli_main  # noqa: E402
from common.predict import load_for_prediction  # noqa: E402
from common.seg_predict import get_args_parser, output_dir, run  # noqa: E402
from model import build_model  # noqa: E402
from receptive_field import count_holes, model_receptive_field, save_heatmap_figure  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = get_args_parser(__doc__)
    parser.add_argument("--receptive-field", action="store_true",
                        help="also write receptive_field_<model>.png for the checkpoint's conv stack")
    args = parser.parse_args(argv)
    code = run(args, build_model)
    if args.receptive_field:
        model, _, _ = load_for_prediction(args.checkpoint, build_model)
        field = model_receptive_field(model)
        holes = count_holes(field)
        out = output_dir(args) / f"receptive_field_{model.variant}.png"
        save_heatmap_figure(field, out, f"{model.variant}: {field.shape[0]}x{field.shape[1]} field, {holes} holes")
        print(f"receptive field: {out} ({holes} holes)")
    return code


if __name__ == "__main__":
    cli_main(lambda: sys.exit(main()))
