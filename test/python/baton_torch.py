"""PyTorch's side of Baton's .pth and MiniMind tests: each subcommand does one thing with real
PyTorch and prints a JSON line (or writes files) for the node test to check.

  versions                          torch version
  check-pth SAFETENSORS PTH...      torch.load(weights_only=True) each .pth, compare with the safetensors
  save DIR                          torch.save state dicts in float32/float16/bfloat16 (+ expected bytes)
  legacy PATH                       torch.save in the legacy non-zip format
  convert IN OUT                    torch.save(torch.load(IN), OUT): the conversion Baton's error advises
  unsafe-load PTH...                torch.load(weights_only=False): runs whatever each pickle says
  round IN OUT_PREFIX               float32 bits in IN → .half(), .bfloat16() bits and back, as torch does
  minimind-save SHAPE (REVISION OUT)...
                                    reference models' weights saved as MiniMind's trainer saves them
  eval-llm-load REVISION HIDDEN LAYERS PTH
                                    build the model as MiniMind's eval_llm.py does (config defaults
                                    but for hidden size and layers) and strict-load PTH
  config REVISION HIDDEN...         the revision's MiniMindConfig defaults for each hidden size
  logits REVISION SHAPE IDS (PTH OUT)...
                                    strict-load each .pth into the reference model, write its float32
                                    logits to OUT, print the model's state_dict() names in order
"""
import json
import struct
import sys
from collections import OrderedDict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import minimind2  # noqa: E402
import minimind3  # noqa: E402

REVISIONS = {"minimind2": minimind2, "minimind3": minimind3}
DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
INT_VIEW = {torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16}


def read_safetensors(path):
    """A float32 safetensors file without the safetensors package: header JSON, then raw data."""
    raw = Path(path).read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + length])
    header.pop("__metadata__", None)
    data = raw[8 + length:]
    out = OrderedDict()
    for name, entry in header.items():
        assert entry["dtype"] == "F32", entry
        begin, end = entry["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[begin:end]), dtype=torch.float32).reshape(entry["shape"])
    return out


def write_safetensors(path, tensors):
    """Tensors of any float dtype as safetensors, the reference bytes Baton's reader must reproduce."""
    names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}
    header, chunks, offset = {}, [], 0
    for name, tensor in tensors.items():
        blob = tensor.contiguous().view(INT_VIEW[tensor.dtype]).numpy().tobytes()
        header[name] = {"dtype": names[tensor.dtype], "shape": list(tensor.shape), "data_offsets": [offset, offset + len(blob)]}
        chunks.append(blob)
        offset += len(blob)
    encoded = json.dumps(header).encode()
    Path(path).write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(chunks))


def bits(tensor):
    return tensor.contiguous().view(INT_VIEW[tensor.dtype])


def check_pth(safetensors_path, *pth_paths):
    expected = read_safetensors(safetensors_path)
    report = []
    for path in pth_paths:
        loaded = torch.load(path, weights_only=True)
        problems = []
        if sorted(loaded.keys()) != sorted(expected.keys()):
            problems.append(f"names {sorted(set(loaded) ^ set(expected))} are in one file only")
        dtypes = sorted({str(t.dtype) for t in loaded.values()})
        for name, tensor in loaded.items():
            want = expected.get(name)
            if want is None:
                continue
            want = want.to(tensor.dtype)
            if tensor.shape != want.shape:
                problems.append(f"{name}: shape {tuple(tensor.shape)} != {tuple(want.shape)}")
            elif not torch.equal(bits(tensor), bits(want)):
                problems.append(f"{name}: values differ")
        report.append({"path": path, "type": type(loaded).__name__, "dtypes": dtypes, "problems": problems})
    print(json.dumps(report))


def special_values():
    """Values where rounding matters: ties, subnormals, overflow, signed zero, infinities."""
    v = [0.0, -0.0, 1.0, -2.5, 65504.0, 65520.0, 70000.0, 1e-8, 6e-8, 2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -26,
         1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11, 1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8, float("inf"), float("-inf"), 3.4e38]
    return torch.tensor(v, dtype=torch.float32)


def save(directory):
    out = Path(directory)
    generator = torch.Generator().manual_seed(1234)
    base = OrderedDict(
        [
            ("model.embed_tokens.weight", torch.randn(7, 4, generator=generator)),
            ("model.layers.0.self_attn.q_proj.weight", torch.randn(4, 4, generator=generator) * 300),
            ("model.norm.weight", 1 + torch.randn(4, generator=generator) * 1e-3),
            ("special", special_values()),
            ("scalar", torch.tensor(0.1)),
        ]
    )
    for label, dtype in DTYPES.items():
        tensors = OrderedDict((k, v.to(dtype)) for k, v in base.items())
        torch.save(tensors, out / f"{label}.pth")
        write_safetensors(out / f"{label}.safetensors", tensors)
    # A real module's state_dict(): OrderedDict with _metadata, tied weights sharing one storage.
    model = minimind3.MiniMindForCausalLM(
        minimind3.MiniMindConfig(hidden_size=32, num_hidden_layers=1, vocab_size=50, num_attention_heads=4,
                                 num_key_value_heads=2, max_position_embeddings=16))
    state = model.state_dict()
    torch.save(state, out / "module.pth")
    write_safetensors(out / "module.safetensors", state)
    # What MiniMind's trainer writes at every save: {k: v.half()} of the state dict.
    half = {k: v.half().cpu() for k, v in state.items()}
    torch.save(half, out / "minimind-half.pth")
    write_safetensors(out / "minimind-half.safetensors", half)
    # Views: a slice at a storage offset and a transposed (strided) tensor of a shared storage.
    matrix = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    views = OrderedDict([("whole", matrix), ("row", matrix[1]), ("transposed", matrix.t()), ("column", matrix[:, 2])])
    torch.save(views, out / "views.pth")
    write_safetensors(out / "views.safetensors", OrderedDict((k, v.contiguous()) for k, v in views.items()))
    print(json.dumps({"torch": torch.__version__}))


def legacy(path):
    torch.save(OrderedDict([("weight", torch.ones(2, 2))]), path, _use_new_zipfile_serialization=False)


def convert(source, target):
    torch.save(torch.load(source), target)


def unsafe_load(*paths):
    for path in paths:
        try:
            torch.load(path, weights_only=False)
        except Exception:  # the payload has run by the time its result is rejected
            pass


def round_trip(source, prefix):
    values = torch.frombuffer(bytearray(Path(source).read_bytes()), dtype=torch.float32)
    for label, dtype in (("F16", torch.float16), ("BF16", torch.bfloat16)):
        narrow = values.to(dtype)
        Path(f"{prefix}.{label}").write_bytes(bits(narrow).numpy().tobytes())
        Path(f"{prefix}.{label}.F32").write_bytes(bits(narrow.float()).numpy().tobytes())


def make_config(revision, shape):
    module = REVISIONS[revision]
    return module.MiniMindConfig(
        hidden_size=shape["hidden_size"], num_hidden_layers=shape["num_hidden_layers"],
        num_attention_heads=shape["num_attention_heads"], num_key_value_heads=shape["num_key_value_heads"],
        vocab_size=shape["vocab_size"], max_position_embeddings=shape["max_position_embeddings"])


def config(revision, *hidden_sizes):
    report = []
    for hidden in hidden_sizes:
        made = make_config(revision, {"hidden_size": int(hidden), "num_hidden_layers": 1, "num_attention_heads": 8,
                                      "num_key_value_heads": 2, "vocab_size": 6400, "max_position_embeddings": 64})
        REVISIONS[revision].MiniMindForCausalLM(made)  # MiniMind2 derives its MLP width while building the model
        report.append({"hidden_size": int(hidden), "intermediate_size": made.intermediate_size,
                       "rms_norm_eps": made.rms_norm_eps, "rope_theta": made.rope_theta})
    print(json.dumps(report))


def logits(revision, shape_json, ids_json, *pth_and_out):
    """Strict-load each .pth into the reference model; write its logits; print the state_dict() names."""
    model = REVISIONS[revision].MiniMindForCausalLM(make_config(revision, json.loads(shape_json)))
    model.eval()
    ids = torch.tensor(json.loads(ids_json), dtype=torch.long)
    for pth, out in zip(pth_and_out[::2], pth_and_out[1::2]):
        model.load_state_dict(torch.load(pth, weights_only=True), strict=True)
        with torch.no_grad():
            result = model(ids).float()
        Path(out).write_bytes(result.contiguous().numpy().tobytes())
    print(json.dumps({"state_dict_keys": list(model.state_dict().keys())}))


def minimind_save(shape_json, *revision_and_out):
    """Checkpoints as MiniMind's trainer writes them: {name: tensor.half()} of the model's state_dict()
    (SHAPE's optional "dtype", F16 by default, picks another type), and beside each OUT, as
    OUT.f32.safetensors, its values widened to float32 by PyTorch: what a reader must get."""
    shape = json.loads(shape_json)
    dtype = DTYPES[shape.get("dtype", "F16")]
    for revision, out in zip(revision_and_out[::2], revision_and_out[1::2]):
        torch.manual_seed(0)
        model = REVISIONS[revision].MiniMindForCausalLM(make_config(revision, shape))
        state = {k: v.to(dtype).cpu() for k, v in model.state_dict().items()}
        torch.save(state, out)
        write_safetensors(f"{out}.f32.safetensors", OrderedDict((k, v.float()) for k, v in state.items()))


def eval_llm_load(revision, hidden_size, num_hidden_layers, pth):
    """What eval_llm.py does with --hidden_size H --num_hidden_layers L: MiniMindConfig's defaults for
    everything else (heads, key/value heads, vocabulary), then a strict load of the .pth."""
    module = REVISIONS[revision]
    model = module.MiniMindForCausalLM(module.MiniMindConfig(hidden_size=int(hidden_size),
                                                             num_hidden_layers=int(num_hidden_layers)))
    model.load_state_dict(torch.load(pth, map_location="cpu"), strict=True)
    print(json.dumps({"parameters": sum(p.numel() for p in model.parameters())}))


COMMANDS = {"check-pth": check_pth, "save": save, "legacy": legacy, "convert": convert, "unsafe-load": unsafe_load,
            "round": round_trip, "config": config, "logits": logits, "minimind-save": minimind_save,
            "eval-llm-load": eval_llm_load,
            "versions": lambda: print(json.dumps({"torch": torch.__version__}))}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
