#!/usr/bin/env python3
"""How much mask IoU the pixel geometry alone costs, with a perfect mask head and a perfect box.

For random elliptical "tumours" (radii 6-21 px in a 256x256 image, the sizes of the shipped MRI data's objects) the
M x M mask target is cut from the ground truth exactly as training cuts it (RoIAlign over the object's box, unaligned
as torchvision's project_masks_on_boxes or aligned as detectron2's), then pasted back into the image at the same box,
either with torchvision's paste_masks_in_image (box rounded to whole pixels, mask padded and stretched) or with the
exact aligned paste (detectron2's grid_sample paste; MaskRcnn.Net's MaskPasting.PasteAligned, tested equal to it).
The IoU of the result with the ground truth is the best any trained mask head can reach with that geometry.

    /usr/bin/python3 benchmarks/mask_geometry.py [--objects 200] [--seed 0]
"""
import argparse

import torch
import torch.nn.functional as F
from torchvision.models.detection.roi_heads import paste_masks_in_image
from torchvision.ops import roi_align

SIZE = 256
M = 28


def ellipse(cx, cy, rx, ry):
    ys, xs = torch.meshgrid(torch.arange(SIZE) + 0.5, torch.arange(SIZE) + 0.5, indexing="ij")
    return (((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1).float()


def aligned_paste(mask, box, shift):
    """Cell (i, j) at (x1 + shift + (j + 0.5) w / M, ...): grid_sample at the pixel centres, zero padding."""
    x1, y1, x2, y2 = box.tolist()
    xs = (torch.arange(SIZE) + 0.5 - x1 - shift) / (x2 - x1) * 2 - 1
    ys = (torch.arange(SIZE) + 0.5 - y1 - shift) / (y2 - y1) * 2 - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return F.grid_sample(mask[None, None], torch.stack([gx, gy], -1)[None], align_corners=False)[0, 0]


def iou(a, b):
    a, b = a > 0.5, b > 0.5
    return (a & b).sum().item() / max(1, (a | b).sum().item())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    rows = {
        "unaligned targets, torchvision paste (torchvision's Mask R-CNN)": [],
        "unaligned targets, exact paste shifted by their half pixel": [],
        "aligned targets, torchvision paste": [],
        "aligned targets, aligned paste (--aligned-roi-align on)": [],
    }
    names = list(rows)
    for _ in range(args.objects):
        rx, ry = (torch.rand(2) * 15 + 6).tolist()
        cx, cy = (torch.rand(2) * 150 + 50).tolist()
        truth = ellipse(cx, cy, rx, ry)
        ys, xs = torch.nonzero(truth, as_tuple=True)
        box = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
        rois = torch.cat([torch.zeros(1, 1), box[None]], 1)
        for aligned in (False, True):
            target = roi_align(truth[None, None], rois, (M, M), 1.0, aligned=aligned)[0, 0]
            torchvision_pasted = paste_masks_in_image(target[None, None], box[None], (SIZE, SIZE))[0, 0]
            exact = aligned_paste(target, box, 0.0 if aligned else 0.5)
            rows[names[2 if aligned else 0]].append(iou(torchvision_pasted, truth))
            rows[names[3 if aligned else 1]].append(iou(exact, truth))

    print(f"{args.objects} ellipses, radii 6-21 px, {SIZE}x{SIZE} image, M = {M}, seed {args.seed}")
    print("| geometry | mean IoU | worst IoU | objects with IoU < 0.9 |")
    print("|---|---|---|---|")
    for name, values in rows.items():
        below = sum(v < 0.9 for v in values)
        print(f"| {name} | {sum(values) / len(values):.4f} | {min(values):.4f} | {below} |")


if __name__ == "__main__":
    main()
