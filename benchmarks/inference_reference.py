#!/usr/bin/env python3
"""torchvision's side of benchmarks/compare_inference.sh: the two R50-FPN Mask R-CNN configurations, timed per image
and per stage, plus the FLOPs of each stage and the rate of one large convolution (the hardware's practical peak).

Configurations (both seeded; class scores x40 so that 100 detections with masks come out of random weights):
  batchnorm  maskrcnn_resnet50_fpn(weights=None, weights_backbone=None): eval-mode BatchNorm2d with default
             statistics (mean 0, var 1, weight 1, bias 0), all 5 stages trainable.
  frozenbn   the layout of torchvision's COCO checkpoint: ResNet-50 with FrozenBatchNorm2d (eps 1e-5), FPN over
             layers 1-4, 3 trainable stages, and non-trivial frozen statistics (weight U(0.5,1.5), bias U(-0.1,0.1),
             running_mean U(-0.1,0.1), running_var U(0.5,2)), saved with torch.save like a real checkpoint.

Stages (torchvision's own modules, called in the order GeneralizedRCNN.forward calls them):
  transform, backbone (ResNet body), fpn, rpn.head, rpn.proposals (anchors, decode, per-level top-k, NMS),
  box.roialign, box.head (TwoMLPHead + predictor), box.postprocess, mask.roialign, mask.head (4 convs, deconv,
  predictor, per-class sigmoid), paste (masks pasted into the image, boxes scaled back).

Usage: python3 inference_reference.py OUT_DIR IMAGE...
         builds and saves OUT_DIR/{batchnorm,frozenbn}.pth; writes OUT_DIR/torchvision.json (FLOPs per stage, peaks);
       python3 inference_reference.py --time OUT_DIR RUN IMAGE...
         one timed round of both saved models (per image: a warm-up, then one timed inference stage by stage) into
         OUT_DIR/torchvisionRUN.json; compare_inference.sh runs three rounds interleaved with its own.
"""
import json
import os
import statistics
import sys
import time

import torch
from torchvision.io import ImageReadMode, read_image
from torchvision.models import resnet50
from torchvision.models.detection import MaskRCNN, maskrcnn_resnet50_fpn
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.models.detection.roi_heads import maskrcnn_inference
from torchvision.models.detection.rpn import concat_box_prediction_layers
from torchvision.ops.misc import FrozenBatchNorm2d

STAGES = ['transform', 'backbone', 'fpn', 'rpn.head', 'rpn.proposals', 'box.roialign', 'box.head', 'box.postprocess',
          'mask.roialign', 'mask.head', 'paste']


def build(config):
    torch.manual_seed(0)
    if config == 'batchnorm':
        m = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    else:
        body = resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
        m = MaskRCNN(_resnet_fpn_extractor(body, 3), num_classes=91)
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for mod in m.modules():
                if isinstance(mod, FrozenBatchNorm2d):
                    c = mod.weight.numel()
                    mod.weight.copy_(torch.rand(c, generator=g) + 0.5)
                    mod.bias.copy_(torch.rand(c, generator=g) * 0.2 - 0.1)
                    mod.running_mean.copy_(torch.rand(c, generator=g) * 0.2 - 0.1)
                    mod.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
    with torch.no_grad():
        m.roi_heads.box_predictor.cls_score.weight.mul_(40)
    return m.eval()


def staged(m, img, clock):
    """One inference, stage by stage; clock(name) marks the end of a stage. Returns the detections."""
    original = [img.shape[-2:]]
    images, _ = m.transform([img]); clock('transform')
    body = m.backbone.body(images.tensors); clock('backbone')
    features = m.backbone.fpn(body); clock('fpn')
    rpn, levels = m.rpn, list(features.values())
    objectness, deltas = rpn.head(levels); clock('rpn.head')
    anchors = rpn.anchor_generator(images, levels)
    per_level = [o[0].shape[0] * o[0].shape[1] * o[0].shape[2] for o in objectness]
    objectness, deltas = concat_box_prediction_layers(objectness, deltas)
    proposals = rpn.box_coder.decode(deltas.detach(), anchors).view(len(anchors), -1, 4)
    proposals, _ = rpn.filter_proposals(proposals, objectness, images.image_sizes, per_level); clock('rpn.proposals')
    rh = m.roi_heads
    x = rh.box_roi_pool(features, proposals, images.image_sizes); clock('box.roialign')
    logits, regression = rh.box_predictor(rh.box_head(x)); clock('box.head')
    boxes, scores, labels = rh.postprocess_detections(logits, regression, proposals, images.image_sizes)
    result = [{'boxes': boxes[0], 'labels': labels[0], 'scores': scores[0]}]; clock('box.postprocess')
    x = rh.mask_roi_pool(features, [r['boxes'] for r in result], images.image_sizes); clock('mask.roialign')
    probs = maskrcnn_inference(rh.mask_predictor(rh.mask_head(x)), [r['labels'] for r in result])
    result[0]['masks'] = probs[0]; clock('mask.head')
    result = m.transform.postprocess(result, images.image_sizes, original); clock('paste')
    return result[0]


def flops_by_stage(m, img):
    """Multiply-add FLOPs (2 per MAC) of the convolutions and linear layers of each stage, from forward hooks."""
    prefixes = [('backbone.body', 'backbone'), ('backbone.fpn', 'fpn'), ('rpn', 'rpn.head'),
                ('roi_heads.box', 'box.head'), ('roi_heads.mask', 'mask.head')]
    counts = dict.fromkeys(STAGES, 0.0)
    hooks = []
    for name, mod in m.named_modules():
        stage = next((s for p, s in prefixes if name.startswith(p)), None)
        if stage is None:
            continue
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            def hook(mod, inp, out, stage=stage):
                x = inp[0]
                if isinstance(mod, torch.nn.ConvTranspose2d):  # each input pixel meets every kernel tap
                    macs = x.numel() * mod.out_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
                else:
                    macs = out.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]
                counts[stage] += 2.0 * macs
            hooks.append(mod.register_forward_hook(hook))
        elif isinstance(mod, torch.nn.Linear):
            def hook(mod, inp, out, stage=stage):
                counts[stage] += 2.0 * inp[0].numel() // mod.in_features * mod.in_features * mod.out_features
            hooks.append(mod.register_forward_hook(hook))
    with torch.inference_mode():
        m([img])
    for h in hooks:
        h.remove()
    return counts


def peak_conv(dtype):
    """Median time of a 256->256 3x3 convolution on [1, 256, 136, 200] channels-last, and its GFLOP/s.

    Its output (27 MB in float32) stays below glibc's 32 MiB mmap limit, and main() runs this in a process started
    with MALLOC_MMAP_THRESHOLD_=32 MiB: the output block is then reused from the heap, so the figure is the kernel's
    rate, not the kernel's page faults on a fresh mapping (which cost an R50-FPN-sized map 2-4x).
    """
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 256, 136, 200, generator=g).to(dtype).contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(256, 256, 3, padding=1).to(dtype).to(memory_format=torch.channels_last).eval()
    times = []
    with torch.inference_mode():
        conv(x)
        for _ in range(5):
            t = time.perf_counter(); conv(x); times.append(time.perf_counter() - t)
    s = statistics.median(times)
    return {'seconds': s, 'gflops': 2 * 256 * 256 * 9 * 136 * 200 / s / 1e9}


def peaks():
    """The single-convolution rates, measured in a child process with glibc's mmap threshold at its maximum."""
    import subprocess
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(32 << 20), MALLOC_TRIM_THRESHOLD_=str(1 << 30))
    code = ('import json, torch, inference_reference as r; torch.set_num_threads(2); out = {"fp32": r.peak_conv(torch.float32)}\n'
            'try:\n    out["bf16"] = r.peak_conv(torch.bfloat16)\nexcept RuntimeError as e:\n    out["bf16"] = {"error": str(e)}\n'
            'print(json.dumps(out))')
    text = subprocess.run([sys.executable, '-c', code], env=env, cwd=os.path.dirname(os.path.abspath(__file__)),
                          check=True, capture_output=True, text=True, timeout=600).stdout
    return json.loads(text.strip().splitlines()[-1])


def time_images(m, paths):
    """Per image: a warm-up, then one timed inference, stage by stage (checked against a plain call)."""
    images = {}
    for p in paths:
        img = read_image(p, ImageReadMode.RGB).float() / 255
        with torch.inference_mode():
            m([img])  # warm-up
            stages = {}
            t0 = time.perf_counter(); last = [t0]

            def clock(name):
                now = time.perf_counter(); stages[name] = now - last[0]; last[0] = now
            d = staged(m, img, clock)
            total = time.perf_counter() - t0
            # the staged run is the model's forward, step by step: check it against one plain call
            ref = m([img])[0]
            assert torch.equal(ref['boxes'], d['boxes']) and torch.equal(ref['masks'], d['masks'])
        images[p] = {'seconds': total, 'detections': len(d['boxes']), 'stages': stages}
    return images


def main():
    torch.set_num_threads(2)
    if sys.argv[1] == '--time':
        # one timed round of both saved configurations (compare_inference.sh interleaves rounds with ours)
        out, run, paths = sys.argv[2], sys.argv[3], sys.argv[4:]
        res = {}
        for config in ('frozenbn', 'batchnorm'):
            m = build(config)
            m.load_state_dict(torch.load(os.path.join(out, f'{config}.pth')))
            res[config] = time_images(m.eval(), paths)
        json.dump(res, open(os.path.join(out, f'torchvision{run}.json'), 'w'), indent=1)
        return
    out, paths = sys.argv[1], sys.argv[2:]
    p = peaks()
    res = {'peak_conv_fp32': p['fp32'], 'peak_conv_bf16': p['bf16'], 'configs': {}}
    for config in ('frozenbn', 'batchnorm'):
        m = build(config)
        torch.save(m.state_dict(), os.path.join(out, f'{config}.pth'))
        res['configs'][config] = {'flops': flops_by_stage(m, read_image(paths[0], ImageReadMode.RGB).float() / 255)}
    json.dump(res, open(os.path.join(out, 'torchvision.json'), 'w'), indent=1)


if __name__ == '__main__':
    main()
