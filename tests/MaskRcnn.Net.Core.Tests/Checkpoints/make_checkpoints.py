"""Reference checkpoints for the MaskRcnn.Net checkpoint reader tests.

Usage:
  make_checkpoints.py make OUT_DIR MARKER_PATH   writes *.pt / *.safetensors files and expected.json into OUT_DIR
  make_checkpoints.py read_safetensors FILE      prints the tensors and metadata of FILE as JSON (an independent
                                                 reader written from the format description)

expected.json maps each file name to {"tensors": [[key, dtype, shape, values], ...] in file order,
"extras": {key: value}, "metadata": {...}}; dtype is the C# DType name, values are the flattened elements.
"""
import collections
import json
import os
import struct
import sys

import torch

DTYPE_NAMES = {
    torch.float32: "Float32", torch.float16: "Float16", torch.bfloat16: "BFloat16", torch.float64: "Float64",
    torch.int64: "Int64", torch.int32: "Int32", torch.int16: "Int16", torch.int8: "Int8", torch.uint8: "UInt8",
    torch.bool: "Bool",
}
ST_NAMES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64", torch.int64: "I64",
    torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}
ST_DTYPES = {v: k for k, v in ST_NAMES.items()}


def describe(t):
    t = t.detach()
    if t.dtype.is_floating_point:
        values = t.to(torch.float64).flatten().tolist()
    else:
        values = t.to(torch.int64).flatten().tolist()
    return [DTYPE_NAMES[t.dtype], list(t.shape), values]


def flatten(value, prefix, tensors, extras):
    """The flattening rule of TorchStateDict: nested dict keys and list indices joined by '.'."""
    join = (lambda k: k if prefix == "" else prefix + "." + k)
    if isinstance(value, torch.Tensor):
        tensors.append([prefix] + describe(value))
    elif isinstance(value, dict):
        for k, v in value.items():
            flatten(v, join(k if isinstance(k, str) else repr(k)), tensors, extras)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            flatten(v, join(str(i)), tensors, extras)
    else:
        extras[prefix] = value


def expect(obj, metadata=None):
    tensors, extras = [], {}
    flatten(obj, "", tensors, extras)
    return {"tensors": tensors, "extras": extras, "metadata": metadata or {}}


class Evil:
    """Pickles as a call to os.system; a safe loader must refuse it without running it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, ("touch " + self.marker,))


def write_safetensors(path, tensors, metadata=None):
    """Minimal writer following the safetensors format description (reference ordering and padding)."""
    items = sorted(tensors.items(), key=lambda kv: (-kv[1].element_size(), kv[0]))
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, t in items:
        data = t.detach().contiguous().view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": ST_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * ((8 - len(raw) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """Independent strict reader: checks layout like the reference implementation."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    assert (8 + n) % 8 == 0, "header not padded to a multiple of 8"
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    metadata = header.pop("__metadata__", {})
    spans = sorted((v["data_offsets"][0], v["data_offsets"][1], k) for k, v in header.items())
    pos = 0
    for b, e, k in spans:
        assert b == pos, f"{k}: gap or overlap at {b} (expected {pos})"
        pos = e
    assert pos == len(data), "data buffer not fully covered"
    out = {}
    for name, info in header.items():
        dtype = ST_DTYPES[info["dtype"]]
        b, e = info["data_offsets"]
        itemsize = torch.empty((), dtype=dtype).element_size()
        assert b % itemsize == 0, f"{name}: misaligned data offset {b}"
        shape = info["shape"]
        if e > b:
            t = torch.frombuffer(bytearray(data[b:e]), dtype=dtype).reshape(shape)
        else:
            t = torch.empty(shape, dtype=dtype)
        out[name] = describe(t)
    return {"tensors": out, "metadata": metadata, "header_keys": list(header.keys())}


def make(out, marker):
    torch.manual_seed(1234)
    expected = {}

    base = torch.arange(12, dtype=torch.float32) * 0.5 - 2
    big = torch.randn(10)
    basic = {
        "f32": torch.randn(3, 4),
        "f16": torch.randn(2, 3).half(),
        "bf16": torch.randn(5).bfloat16(),
        "f64": torch.randn(2, 2).double(),
        "i64": torch.tensor([-(2 ** 62), 5, 2 ** 40 + 1], dtype=torch.int64),
        "i32": torch.randint(-1000, 1000, (4,), dtype=torch.int32),
        "i16": torch.tensor([-300, 7, 32000], dtype=torch.int16),
        "i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "u8": torch.arange(0, 256, 37).to(torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
        "transposed": torch.randn(4, 5).t(),
        "expanded": torch.randn(3, 1).expand(3, 4),
        "shared_full": base,
        "shared_tail": base[2:],
        "shared_view": base.view(3, 4)[:, 1:3],
        "shared_step": base[::3],
        "only_slice": big[3:7],
    }
    assert not basic["transposed"].is_contiguous() and not basic["shared_view"].is_contiguous()
    torch.save(basic, os.path.join(out, "basic_zip.pt"))
    torch.save(basic, os.path.join(out, "basic_legacy.pt"), _use_new_zipfile_serialization=False)
    torch.save(basic, os.path.join(out, "basic_proto4_zip.pt"), pickle_protocol=4)
    for name in ("basic_zip.pt", "basic_legacy.pt", "basic_proto4_zip.pt"):
        expected[name] = expect(basic)

    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.Conv2d(4, 2, 1, bias=False), torch.nn.BatchNorm2d(2))
    model.train()
    model(torch.randn(2, 3, 8, 8))
    sd = model.state_dict()
    assert isinstance(sd, collections.OrderedDict) and hasattr(sd, "_metadata")
    torch.save(sd, os.path.join(out, "model_zip.pt"))
    torch.save(sd, os.path.join(out, "model_legacy.pt"), _use_new_zipfile_serialization=False)
    expected["model_zip.pt"] = expect(sd)
    expected["model_legacy.pt"] = expect(sd)

    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    nested = {"model": model.state_dict(), "epoch": 3, "lr": 0.25, "name": "run1", "flag": True, "none": None,
              "optimizer": opt.state_dict(), "param": torch.nn.Parameter(torch.randn(2, 3))}
    torch.save(nested, os.path.join(out, "nested_zip.pt"))
    torch.save(nested, os.path.join(out, "nested_legacy.pt"), _use_new_zipfile_serialization=False)
    expected["nested_zip.pt"] = expect(nested)
    expected["nested_legacy.pt"] = expect(nested)

    evil = {"w": torch.ones(2), "x": Evil(marker)}
    torch.save(evil, os.path.join(out, "evil_zip.pt"))
    torch.save(evil, os.path.join(out, "evil_legacy.pt"), _use_new_zipfile_serialization=False)
    torch.save(model, os.path.join(out, "module_zip.pt"))

    st = {k: v for k, v in basic.items() if k not in ("shared_tail", "shared_view", "shared_step")}
    meta = {"format": "pt", "note": "h\u00e9llo \"quoted\""}
    write_safetensors(os.path.join(out, "py.safetensors"), st, meta)
    expected["py.safetensors"] = expect(st, meta)

    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "read_safetensors":
        print(json.dumps(read_safetensors(sys.argv[2])))
    else:
        raise SystemExit(f"unknown mode {sys.argv[1]}")
