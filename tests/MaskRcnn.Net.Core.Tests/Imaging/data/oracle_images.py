# Generates the image-decoding parity cases for ImageDecodeParityTests.
# usage: python3 oracle_images.py OUT_DIR DATA_DIR
# Writes image files into OUT_DIR plus, per case, the expected uint8 CHW pixels (NAME.ref) and manifest.json
# ([{name, file, mode, shape, source}]). Expected pixels come from torchvision.io.read_image (0.14) where it is
# defined; where torchvision 0.14 rejects the input or is known to be wrong, from Pillow or a numpy formula.
import json
import os
import struct
import sys
import zlib

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, read_image
from torchvision.io.image import _read_png_16

out_dir, data_dir = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(20240611)
MODES = {
    "Unchanged": ImageReadMode.UNCHANGED,
    "Gray": ImageReadMode.GRAY,
    "GrayAlpha": ImageReadMode.GRAY_ALPHA,
    "Rgb": ImageReadMode.RGB,
    "RgbAlpha": ImageReadMode.RGB_ALPHA,
}
cases = []


def path(name):
    return os.path.join(out_dir, name)


def add(name, file, mode, chw, source):
    t = torch.as_tensor(np.array(chw)).to(torch.uint8).contiguous()
    assert t.dim() == 3, (name, t.shape)
    t.numpy().tofile(path(name + ".ref"))
    cases.append({"name": name, "file": file, "mode": mode, "shape": list(t.shape), "source": source})


def tv(name, file, modes):
    for m in modes:
        add(f"{name}_{m}", file, m, read_image(file, MODES[m]), "torchvision")


def hwc_to_chw(a):
    a = np.asarray(a)
    if a.ndim == 2:
        a = a[:, :, None]
    return a.transpose(2, 0, 1)


def with_alpha(chw, alpha=None):
    a = np.full((1,) + chw.shape[1:], 255, np.uint8) if alpha is None else alpha[None]
    return np.concatenate([chw, a], 0)


def test_image(h, w, c):
    # Smooth gradients plus noise: realistic for JPEG, exercises every value for PNG.
    y, x = np.mgrid[0:h, 0:w]
    planes = [((x * (k + 3) + y * (7 - k)) * 255 // (w * 3 + h * 7)) for k in range(c)]
    base = np.stack(planes, -1).astype(np.int32) + rng.integers(-20, 21, (h, w, c))
    return np.clip(base, 0, 255).astype(np.uint8)


# ---- PNG writer (for what Pillow cannot write: 16-bit colour, sub-byte gray, Adam7 interlacing) ----------------
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def pack_rows(img, depth):
    rows = []
    for y in range(img.shape[0]):
        if depth == 16:
            rows.append(img[y].astype(">u2").tobytes())
        elif depth == 8:
            rows.append(img[y].astype(np.uint8).tobytes())
        else:
            v = img[y].reshape(-1).astype(np.uint8)
            bits = ((v[:, None] >> np.arange(depth - 1, -1, -1)) & 1).astype(np.uint8).ravel()
            rows.append(np.packbits(bits).tobytes())
    return rows


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def make_png(img, depth, color_type, interlace=False, extra=b""):
    h, w = img.shape[:2]
    raw = b""
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    for x0, y0, dx, dy in passes:
        sub = img[y0::dy, x0::dx]
        if sub.shape[0] and sub.shape[1]:
            raw += b"".join(b"\0" + r for r in pack_rows(sub, depth))
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 1 if interlace else 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def write(name, data):
    with open(path(name), "wb") as f:
        f.write(data)
    return path(name)


ALL = list(MODES)

# ---- real grayscale JPEGs (brain-tumor MRI slices) -----------------------------------------------------------
for f in sorted(os.listdir(data_dir)):
    if f.endswith(".jpg"):
        tv("mri_" + os.path.splitext(f)[0], os.path.join(data_dir, f), ["Unchanged", "Gray", "Rgb"])

# ---- JPEGs written by Pillow ---------------------------------------------------------------------------------
rgb = test_image(37, 53, 3)
Image.fromarray(rgb, "RGB").save(path("rgb.jpg"), quality=90)
tv("jpeg_rgb", path("rgb.jpg"), ["Unchanged", "Gray", "Rgb"])
add("jpeg_rgb_RgbAlpha", path("rgb.jpg"), "RgbAlpha", with_alpha(read_image(path("rgb.jpg"), ImageReadMode.RGB).numpy()), "torchvision+opaque")
add("jpeg_rgb_GrayAlpha", path("rgb.jpg"), "GrayAlpha", with_alpha(read_image(path("rgb.jpg"), ImageReadMode.GRAY).numpy()), "torchvision+opaque")

Image.fromarray(rgb, "RGB").save(path("rgb444.jpg"), quality=75, subsampling=0)
tv("jpeg_rgb444", path("rgb444.jpg"), ["Unchanged"])

Image.fromarray(test_image(61, 45, 3), "RGB").save(path("progressive.jpg"), quality=85, progressive=True)
tv("jpeg_progressive", path("progressive.jpg"), ["Unchanged", "Gray"])

Image.fromarray(test_image(30, 41, 1)[:, :, 0], "L").save(path("gray.jpg"), quality=92)
tv("jpeg_gray", path("gray.jpg"), ["Unchanged", "Gray", "Rgb"])

cmyk = test_image(23, 31, 4)
Image.fromarray(cmyk, "CMYK").save(path("cmyk.jpg"), quality=95)
tv("jpeg_cmyk", path("cmyk.jpg"), ["Unchanged"])  # torchvision 0.14: the 4 stored (Adobe-inverted) channels
pil_cmyk = Image.open(path("cmyk.jpg"))
add("jpeg_cmyk_Rgb", path("cmyk.jpg"), "Rgb", hwc_to_chw(pil_cmyk.convert("RGB")), "pillow")
add("jpeg_cmyk_Gray", path("cmyk.jpg"), "Gray", hwc_to_chw(pil_cmyk.convert("L")), "pillow")
add("jpeg_cmyk_RgbAlpha", path("cmyk.jpg"), "RgbAlpha", with_alpha(hwc_to_chw(pil_cmyk.convert("RGB"))), "pillow+opaque")

# ---- PNGs written by Pillow ----------------------------------------------------------------------------------
for mode, c in [("L", 1), ("LA", 2), ("RGB", 3), ("RGBA", 4)]:
    img = test_image(19, 27, c)
    Image.fromarray(img[:, :, 0] if c == 1 else img, mode).save(path(f"{mode}.png"))
    tv(f"png_{mode}", path(f"{mode}.png"), ALL)

# Palette without and with transparency (torchvision 0.14 returns palette indices in UNCHANGED mode and mishandles
# alpha modes for opaque palettes, so the expectation is the palette lookup itself).
palette = rng.integers(0, 256, (16, 3), dtype=np.uint8)
indices = rng.integers(0, 16, (21, 17), dtype=np.uint8)
p = Image.fromarray(indices, "P")
p.putpalette(palette.ravel().tolist())
p.save(path("palette.png"))
looked_up = hwc_to_chw(palette[indices])
add("png_palette_Unchanged", path("palette.png"), "Unchanged", looked_up, "palette lookup")
add("png_palette_RgbAlpha", path("palette.png"), "RgbAlpha", with_alpha(looked_up), "palette lookup")
tv("png_palette", path("palette.png"), ["Rgb", "Gray"])

alphas = rng.integers(0, 256, 16, dtype=np.uint8)
p.save(path("palette_trns.png"), transparency=alphas.tobytes())
assert Image.open(path("palette_trns.png")).info.get("transparency") is not None
add("png_palette_trns_Unchanged", path("palette_trns.png"), "Unchanged", with_alpha(looked_up, alphas[indices]), "palette lookup")
tv("png_palette_trns", path("palette_trns.png"), ["Gray", "GrayAlpha", "Rgb", "RgbAlpha"])

# Gray and RGB with a tRNS colour key: torchvision ignores the key; here the alpha modes honour it.
g = test_image(13, 22, 1)[:, :, 0]
key = int(g[3, 4])
Image.fromarray(g, "L").save(path("gray_trns.png"), transparency=key)
tv("png_gray_trns", path("gray_trns.png"), ["Unchanged", "Gray", "Rgb"])
ga = np.where(g == key, 0, 255).astype(np.uint8)
add("png_gray_trns_GrayAlpha", path("gray_trns.png"), "GrayAlpha", np.stack([g, ga]), "tRNS key")
add("png_gray_trns_RgbAlpha", path("gray_trns.png"), "RgbAlpha", np.stack([g, g, g, ga]), "tRNS key")

c3 = test_image(14, 9, 3)
rkey = tuple(int(v) for v in c3[5, 6])
c3[0, 0] = rkey
Image.fromarray(c3, "RGB").save(path("rgb_trns.png"), transparency=rkey)
tv("png_rgb_trns", path("rgb_trns.png"), ["Unchanged", "Rgb"])
ra = np.where((c3 == np.array(rkey, np.uint8)).all(-1), 0, 255).astype(np.uint8)
add("png_rgb_trns_RgbAlpha", path("rgb_trns.png"), "RgbAlpha", with_alpha(hwc_to_chw(c3), ra), "tRNS key")

# ---- hand-written PNGs ---------------------------------------------------------------------------------------
# 16-bit: torchvision 0.14's read_image rejects them; expected = high byte of torchvision's 16-bit decoder.
for ctype, c, label in [(0, 1, "gray16"), (4, 2, "gray_alpha16"), (2, 3, "rgb16"), (6, 4, "rgba16")]:
    img16 = rng.integers(0, 65536, (11, 15, c), dtype=np.uint16)
    f = write(f"{label}.png", make_png(img16, 16, ctype))
    for m in ALL:
        add(f"png_{label}_{m}", f, m, (_read_png_16(f, MODES[m]) >> 8), "torchvision 16-bit >> 8")

# Sub-byte gray (scaled to 0..255 by libpng).
for depth in (1, 2, 4):
    low = rng.integers(0, 1 << depth, (9, 13, 1), dtype=np.uint8)
    f = write(f"gray{depth}.png", make_png(low, depth, 0))
    tv(f"png_gray{depth}", f, ["Unchanged", "Gray", "Rgb"])

# Adam7 interlaced, odd sizes so that some passes are partial or empty.
for ctype, c, label in [(0, 1, "gray"), (2, 3, "rgb"), (6, 4, "rgba")]:
    img = test_image(13, 10, c)
    f = write(f"interlaced_{label}.png", make_png(img, 8, ctype, interlace=True))
    ref = read_image(f, ImageReadMode.UNCHANGED).numpy()
    assert (ref == hwc_to_chw(img)).all(), "oracle cannot read the hand-written interlaced PNG"
    tv(f"png_interlaced_{label}", f, ["Unchanged", "Gray", "Rgb"])
img16 = rng.integers(0, 65536, (7, 5, 3), dtype=np.uint16)
f = write("interlaced_rgb16.png", make_png(img16, 16, 2, interlace=True))
# torchvision 0.14's 16-bit decoder gets interlaced 16-bit files wrong: expect the high bytes of the source.
add("png_interlaced_rgb16_Unchanged", f, "Unchanged", hwc_to_chw((img16 >> 8).astype(np.uint8)), "source >> 8")
tiny = test_image(1, 1, 3)
f = write("interlaced_1x1.png", make_png(tiny, 8, 2, interlace=True))
tv("png_interlaced_1x1", f, ["Unchanged"])

with open(path("manifest.json"), "w") as fh:
    json.dump(cases, fh)
print(len(cases))
