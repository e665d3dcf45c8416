#!/usr/bin/env python3
"""Torchvision reference number: Mask R-CNN trained with a simple recipe on the brain-tumour data.

This script trains torchvision's own Mask R-CNN on data/brain-tumor/train under a wall-clock budget and writes
its predictions on data/brain-tumor/val as a COCO results JSON. It is the "torchvision trained with a simple,
untuned recipe on the same data and the same budget" baseline that MaskRcnn.Net's own training recipe is compared
to; the C# side evaluates the JSON with its COCO evaluator. It is deliberately NOT tuned.

Recipe
  model      torchvision.models.detection.MaskRCNN(
                 resnet_fpn_backbone(backbone_name="resnet18", weights=None,
                                     norm_layer=torch.nn.BatchNorm2d, trainable_layers=5),
                 num_classes=2, min_size=256, max_size=256)
             i.e. ResNet-18-FPN from scratch (no pretrained weights, all stages trainable, ordinary BatchNorm);
             everything else torchvision defaults (anchors, RPN/ROI sampling, heads, box_score_thresh 0.05,
             at most 100 detections per image, its own resize + ImageNet normalisation).
  optimiser  SGD lr 0.005 (torchvision's detection reference uses 0.02 for 16 images per step; scaled linearly to
             batch 4; --lr to change), momentum 0.9, weight decay 1e-4; linear warm-up of the lr factor from 0.001 to 1 over
             the first 50 iterations, then constant.
  data       batch size 4, train set reshuffled every epoch; images (grey MRI slices, read as 3-channel RGB) as
             float in [0, 1]; random horizontal flip p=0.5 of image, boxes and masks. Targets: one instance per
             COCO annotation, label 1, box = bounds of its polygons, mask = polygons rasterised at image size
             (even-odd rule at pixel centres, union over an annotation's polygons); degenerate boxes (w or h < 1)
             skipped. Images without annotations would be kept as negatives (empty targets).
  budget     epochs over the train set until --minutes of training wall time are spent (checked between
             iterations, so it stops mid-epoch) or --epochs epochs are done, whichever comes first.
  seed       0 (torch, random, numpy); torch.set_num_threads(2) unless --threads.

Output
  --out (default artifacts/torchvision-reference/val_results.json): a COCO results list, one entry per detection
    {"image_id", "category_id": 1, "bbox": [x, y, w, h], "score", "segmentation": {"size": [H, W], "counts": [...]}}
  where the segmentation is torchvision's pasted full-image mask thresholded at 0.5, as uncompressed COCO RLE
  (column-major run lengths, alternating 0s and 1s, starting with the number of leading 0s).
  summary.json beside it: iterations, epochs (fractional), training minutes, s/iteration, recipe, versions.

Usage (from the repository root; only torch, torchvision and numpy are needed)
  /usr/bin/python3 benchmarks/torchvision_reference.py --minutes 10
  /usr/bin/python3 benchmarks/torchvision_reference.py --epochs 20 --minutes 0      # epoch cap only
  /usr/bin/python3 benchmarks/torchvision_reference.py --self-test                  # rasteriser / RLE checks
  Other options: --data DIR (train/ and val/ inside), --out FILE, --threads N, --log-every N (default 10).
On a shared machine wrap it in `flock /tmp/mr-build.lock ...` so it does not overlap other builds/benchmarks.
"""

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from torchvision.io import ImageReadMode, read_image
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

REPO_ROOT = Path(__file__).resolve().parent.parent

RECIPE = {
    "model": "torchvision MaskRCNN, resnet_fpn_backbone(resnet18, weights=None, BatchNorm2d, trainable_layers=5), "
             "num_classes=2, min_size=256, max_size=256, other settings torchvision defaults",
    "optimizer": "SGD",
    "lr": 0.005,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "warmup_iterations": 50,
    "warmup_start_factor": 0.001,
    "schedule_after_warmup": "constant",
    "batch_size": 4,
    "augmentation": "random horizontal flip p=0.5",
    "seed": 0,
    "mask_threshold": 0.5,
}


# ----------------------------------------------------------------------------------------------------------------
# Polygon rasterisation and COCO RLE
# ----------------------------------------------------------------------------------------------------------------

def rasterize_polygon(flat_xy, height, width):
    """Boolean HxW mask of the pixels whose centre (x+0.5, y+0.5) is inside the polygon (even-odd rule).

    flat_xy is a COCO polygon [x1, y1, x2, y2, ...]. Vectorised over the pixel grid; the only Python loop is over
    the polygon's edges.
    """
    pts = np.asarray(flat_xy, dtype=np.float64).reshape(-1, 2)
    inside = np.zeros((height, width), dtype=bool)
    if len(pts) < 3:
        return inside
    px = (np.arange(width, dtype=np.float64) + 0.5)[None, :]   # 1 x W
    py = (np.arange(height, dtype=np.float64) + 0.5)[:, None]  # H x 1
    n = len(pts)
    for i in range(n):
        x1, y1 = pts[i]
        x2, y2 = pts[(i + 1) % n]
        if y1 == y2:
            continue  # horizontal edges never cross a horizontal ray in the half-open test
        # Edge spans the row's y in the half-open sense [min, max) -> each vertex counted once.
        spans = (py >= min(y1, y2)) & (py < max(y1, y2))     # H x 1
        x_cross = x1 + (py - y1) * (x2 - x1) / (y2 - y1)      # H x 1: x where the edge meets the row
        inside ^= spans & (px < x_cross)                      # ray cast towards +x
    return inside


def rasterize_annotation(segmentation, height, width):
    """Union of an annotation's polygons (list of flat coordinate lists) as a boolean HxW mask."""
    mask = np.zeros((height, width), dtype=bool)
    for poly in segmentation:
        mask |= rasterize_polygon(poly, height, width)
    return mask


def encode_rle(mask):
    """Uncompressed COCO RLE of a boolean HxW mask: column-major run lengths, starting with the run of 0s."""
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    flat = mask.T.reshape(-1).astype(np.int8)  # column-major (x outer, y inner)
    if flat.size == 0:
        return {"size": [int(h), int(w)], "counts": []}
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(bounds).tolist()
    if flat[0] == 1:
        runs = [0] + runs
    return {"size": [int(h), int(w)], "counts": [int(r) for r in runs]}


def decode_rle(rle):
    """Inverse of encode_rle: boolean HxW mask."""
    h, w = rle["size"]
    counts = np.asarray(rle["counts"], dtype=np.int64)
    if counts.sum() != h * w:
        raise ValueError(f"RLE counts sum to {counts.sum()}, expected {h * w}")
    values = (np.arange(len(counts)) % 2).astype(bool)
    flat = np.repeat(values, counts)
    return flat.reshape(w, h).T


def self_test():
    ok = True

    def check(name, cond, detail=""):
        nonlocal ok
        ok &= bool(cond)
        print(f"[{'ok' if cond else 'FAIL'}] {name} {detail}")

    # Axis-aligned square [2, 12) x [3, 13): pixel centres x+0.5 in (2, 12) -> x = 2..11, 10 columns; same rows.
    sq = [2, 3, 12, 3, 12, 13, 2, 13]
    m = rasterize_polygon(sq, 20, 16)
    check("square pixel count", m.sum() == 100, f"(got {int(m.sum())}, expected 100)")
    check("square location", m[3:13, 2:12].all() and m.sum() == m[3:13, 2:12].sum())
    # Same square listed clockwise vs counter-clockwise must agree.
    m_rev = rasterize_polygon([2, 13, 12, 13, 12, 3, 2, 3], 20, 16)
    check("orientation invariant", np.array_equal(m, m_rev))
    # Right triangle (0,0),(10,0),(0,10): centres with x+y < 10 -> pixel (x,y) with x+y+1 < 10 -> x+y <= 8: 45 px.
    tri = rasterize_polygon([0, 0, 10, 0, 0, 10], 12, 12)
    check("triangle pixel count", tri.sum() == 45, f"(got {int(tri.sum())}, expected 45)")
    # Union of two disjoint polygons of one annotation: 100 + 4 pixels.
    check("annotation union", rasterize_annotation([sq, [14, 14, 16, 14, 16, 16, 14, 16]], 20, 16).sum() == 104)

    # RLE: hand-checked small mask.
    small = np.array([[0, 1, 1],
                      [0, 1, 0]], dtype=bool)
    # column-major: col0 = 0,0 ; col1 = 1,1 ; col2 = 1,0 -> 0 0 1 1 1 0 -> runs [2, 3, 1]
    r = encode_rle(small)
    check("rle small counts", r["counts"] == [2, 3, 1] and r["size"] == [2, 3], f"(got {r})")
    starts_one = np.array([[1, 0], [1, 1]], dtype=bool)  # column-major 1 1 0 1 -> [0, 2, 1, 1]
    r1 = encode_rle(starts_one)
    check("rle leading one", r1["counts"] == [0, 2, 1, 1], f"(got {r1['counts']})")
    check("rle empty mask", encode_rle(np.zeros((3, 4), bool))["counts"] == [12])
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (5, 7), (37, 23), (64, 64)]:
        rnd = rng.random(shape) < 0.4
        back = decode_rle(encode_rle(rnd))
        check(f"rle round trip {shape}", back.shape == rnd.shape and np.array_equal(back, rnd))
    check("rle round trip square", np.array_equal(decode_rle(encode_rle(m)), m))
    print("self-test", "PASSED" if ok else "FAILED")
    return ok


# ----------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------

def load_split(split_dir, with_targets):
    """List of samples {id, image (uint8 3xHxW), boxes (Nx4 float), masks (NxHxW uint8)} of one COCO split."""
    split_dir = Path(split_dir)
    coco = json.loads((split_dir / "annotations.json").read_text())
    by_image = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    samples, skipped = [], 0
    for info in coco["images"]:
        img = read_image(str(split_dir / "images" / info["file_name"]), ImageReadMode.RGB)
        h, w = int(img.shape[1]), int(img.shape[2])
        if (h, w) != (info["height"], info["width"]):
            print(f"warning: {info['file_name']} is {w}x{h}, JSON says {info['width']}x{info['height']}")
        sample = {"id": info["id"], "file_name": info["file_name"], "image": img}
        if with_targets:
            boxes, masks = [], []
            for ann in by_image.get(info["id"], []):
                if ann.get("iscrowd", 0):
                    continue
                polys = [p for p in ann.get("segmentation") or [] if len(p) >= 6]
                if polys:
                    xy = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polys])
                    x1, y1 = xy.min(axis=0)
                    x2, y2 = xy.max(axis=0)
                else:
                    bx, by, bw, bh = ann["bbox"]
                    x1, y1, x2, y2 = bx, by, bx + bw, by + bh
                x1, x2 = float(np.clip(x1, 0, w)), float(np.clip(x2, 0, w))
                y1, y2 = float(np.clip(y1, 0, h)), float(np.clip(y2, 0, h))
                if x2 - x1 < 1 or y2 - y1 < 1:
                    skipped += 1
                    continue
                if polys:
                    mask = rasterize_annotation(polys, h, w)
                else:  # no polygon: fall back to the box as the mask
                    mask = np.zeros((h, w), dtype=bool)
                    mask[int(y1):int(math.ceil(y2)), int(x1):int(math.ceil(x2))] = True
                boxes.append([x1, y1, x2, y2])
                masks.append(mask)
            sample["boxes"] = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
            sample["masks"] = (torch.from_numpy(np.stack(masks)).to(torch.uint8) if masks
                               else torch.zeros((0, h, w), dtype=torch.uint8))
        samples.append(sample)
    return samples, skipped


def make_batch(samples):
    """Float images in [0, 1] and targets, each independently flipped horizontally with p=0.5."""
    images, targets = [], []
    for s in samples:
        img = s["image"].float() / 255.0
        boxes, masks = s["boxes"].clone(), s["masks"]
        if random.random() < 0.5:
            w = img.shape[-1]
            img = img.flip(-1)
            masks = masks.flip(-1)
            boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
        images.append(img)
        targets.append({"boxes": boxes,
                        "labels": torch.ones((boxes.shape[0],), dtype=torch.int64),
                        "masks": masks})
    return images, targets


# ----------------------------------------------------------------------------------------------------------------
# Model, training, prediction
# ----------------------------------------------------------------------------------------------------------------

def build_model():
    backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None,
                                   norm_layer=torch.nn.BatchNorm2d, trainable_layers=5)
    return MaskRCNN(backbone, num_classes=2, min_size=256, max_size=256)


def train(model, train_set, minutes, max_epochs, log_every=10):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=RECIPE["lr"], momentum=RECIPE["momentum"],
                          weight_decay=RECIPE["weight_decay"])
    warm, f0 = RECIPE["warmup_iterations"], RECIPE["warmup_start_factor"]
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda it: f0 + (1.0 - f0) * it / warm if it < warm else 1.0)
    bs = RECIPE["batch_size"]
    budget_s = minutes * 60.0 if minutes and minutes > 0 else math.inf
    n = len(train_set)
    model.train()
    it, images_seen, epoch, stop_reason = 0, 0, 0, None
    last_losses = {}
    t0 = time.perf_counter()
    while stop_reason is None:
        if max_epochs is not None and epoch >= max_epochs:
            stop_reason = f"epoch cap {max_epochs}"
            break
        order = list(range(n))
        random.shuffle(order)
        for start in range(0, n, bs):
            if time.perf_counter() - t0 >= budget_s:
                stop_reason = f"time budget {minutes} min"
                break
            images, targets = make_batch([train_set[i] for i in order[start:start + bs]])
            loss_dict = model(images, targets)
            loss = sum(loss_dict.values())
            if not torch.isfinite(loss):
                stop_reason = f"non-finite loss at iteration {it + 1}"
                print(stop_reason, {k: float(v) for k, v in loss_dict.items()}, flush=True)
                break
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            it += 1
            images_seen += len(images)
            last_losses = {k: round(float(v), 5) for k, v in loss_dict.items()}
            last_losses["total"] = round(float(loss), 5)
            if it % log_every == 0:
                elapsed = (time.perf_counter() - t0) / 60.0
                print(f"iter {it:5d}  epoch {epoch + (start + len(images)) / n:6.2f}  "
                      f"lr {opt.param_groups[0]['lr']:.5f}  "
                      + "  ".join(f"{k} {v:.4f}" for k, v in last_losses.items())
                      + f"  elapsed {elapsed:.2f} min", flush=True)
        else:
            epoch += 1
    train_s = time.perf_counter() - t0
    return {"iterations": it,
            "epochs": images_seen / n,
            "completed_epochs": epoch,
            "images_seen": images_seen,
            "train_minutes": train_s / 60.0,
            "seconds_per_iteration": train_s / it if it else None,
            "stop_reason": stop_reason,
            "last_losses": last_losses}


@torch.no_grad()
def predict(model, val_set, threshold):
    model.eval()
    results = []
    for s in val_set:
        out = model([s["image"].float() / 255.0])[0]
        h, w = int(s["image"].shape[1]), int(s["image"].shape[2])
        masks = (out["masks"][:, 0] > threshold).numpy()
        for box, score, label, mask in zip(out["boxes"].tolist(), out["scores"].tolist(),
                                           out["labels"].tolist(), masks):
            x1, y1, x2, y2 = box
            results.append({"image_id": s["id"],
                            "category_id": int(label),
                            "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                            "score": float(score),
                            "segmentation": encode_rle(mask.reshape(h, w))})
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0,
                    help="training wall-clock budget in minutes (0 = no time limit; default 10)")
    ap.add_argument("--epochs", type=int, default=None, help="optional cap on the number of epochs")
    ap.add_argument("--data", default=str(REPO_ROOT / "data" / "brain-tumor"),
                    help="folder holding train/ and val/ (COCO annotations.json + images/)")
    ap.add_argument("--out", default=str(REPO_ROOT / "artifacts" / "torchvision-reference" / "val_results.json"),
                    help="COCO results JSON to write (summary.json goes beside it)")
    ap.add_argument("--lr", type=float, default=RECIPE["lr"],
                    help="peak learning rate (default 0.005: torchvision's 0.02 for batch 16, scaled to batch 4)")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--log-every", type=int, default=10, help="print losses every N iterations (default 10)")
    ap.add_argument("--self-test", action="store_true", help="run the rasteriser/RLE checks and exit")
    args = ap.parse_args()

    if args.self_test:
        sys.exit(0 if self_test() else 1)
    if not (args.minutes and args.minutes > 0) and args.epochs is None:
        ap.error("--minutes 0 needs --epochs")

    RECIPE["lr"] = args.lr
    torch.set_num_threads(args.threads)
    torch.manual_seed(RECIPE["seed"])
    random.seed(RECIPE["seed"])
    np.random.seed(RECIPE["seed"])

    data = Path(args.data)
    t = time.perf_counter()
    train_set, skipped_train = load_split(data / "train", with_targets=True)
    val_set, _ = load_split(data / "val", with_targets=False)
    n_inst = sum(int(s["boxes"].shape[0]) for s in train_set)
    n_neg = sum(1 for s in train_set if s["boxes"].shape[0] == 0)
    print(f"train: {len(train_set)} images, {n_inst} instances, {n_neg} without instances, "
          f"{skipped_train} degenerate skipped; val: {len(val_set)} images "
          f"(loaded in {time.perf_counter() - t:.1f} s)", flush=True)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, threads {args.threads}, "
          f"budget {args.minutes} min, epoch cap {args.epochs}", flush=True)

    model = build_model()
    stats = train(model, train_set, args.minutes, args.epochs, args.log_every)
    print(f"training done: {stats['iterations']} iterations, {stats['epochs']:.2f} epochs, "
          f"{stats['train_minutes']:.2f} min"
          + (f", {stats['seconds_per_iteration']:.2f} s/iteration" if stats["iterations"] else "")
          + f" (stopped by {stats['stop_reason']})", flush=True)

    t = time.perf_counter()
    results = predict(model, val_set, RECIPE["mask_threshold"])
    predict_s = time.perf_counter() - t
    print(f"predicted {len(val_set)} val images in {predict_s:.1f} s: {len(results)} detections", flush=True)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results))
    summary = dict(stats)
    summary.update({"predict_seconds": predict_s,
                    "detections": len(results),
                    "val_images": len(val_set),
                    "train_images": len(train_set),
                    "train_instances": n_inst,
                    "budget_minutes": args.minutes,
                    "epoch_cap": args.epochs,
                    "threads": args.threads,
                    "data": str(data),
                    "results": str(out),
                    "torch": torch.__version__,
                    "torchvision": torchvision.__version__,
                    "recipe": RECIPE})
    (out.parent / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {out} and {out.parent / 'summary.json'}")


if __name__ == "__main__":
    main()
