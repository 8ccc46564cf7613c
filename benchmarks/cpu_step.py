"""What makes one sampling step of the default model cheaper on this CPU.

    python -m benchmarks.cpu_step [--model presets/models/default.safetensors] [--repeats 15]

One step is one call of the net (a kick, t = 0.5, batch 1 and 4). Each variant runs in a
process of its own (torch's thread settings hold for a whole process), side by side in one
run: eager fp32 with torch's default threads (the reference), one thread, one interop thread,
`torch.compile`, bf16 autocast, and ONNX Runtime when it is installed. Reported: the median
step time, its ratio to the reference, and how far the output is from the reference's (the
largest difference over the output's RMS). Prints Markdown for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODEL = Path(__file__).resolve().parent.parent / "presets" / "models" / "default.safetensors"
VARIANTS = {
    "eager fp32, torch's default threads": {},
    "eager fp32, 1 thread": {"threads": 1},
    "eager fp32, 1 interop thread": {"interop": 1},
    "torch.compile (inductor)": {"compile": True},
    "bf16 autocast": {"bf16": True},
    "ONNX Runtime (fp32)": {"onnx": True},
}


def inputs(batch: int):
    import torch

    generator = torch.Generator().manual_seed(batch)
    return torch.randn((batch, 2, 32768), generator=generator), torch.full((batch,), 0.5)


def run_variant(model_path: Path, options: dict, repeats: int, out: Path) -> None:
    """In this process: time the variant, save its outputs beside the timings."""
    import torch

    if "threads" in options:
        torch.set_num_threads(options["threads"])
    if "interop" in options:
        torch.set_num_interop_threads(options["interop"])
    from engine.modelfile import load_model

    model = load_model(model_path)
    class_ids = torch.tensor([model.class_index("kick")])
    step, setup_s = _step_function(model, class_ids, options)
    result = {"threads": torch.get_num_threads(), "setup_s": setup_s}
    outputs = {}
    for batch in (1, 4):
        x, t = inputs(batch)
        with torch.inference_mode():
            for _ in range(3):
                y = step(x, t)
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                y = step(x, t)
                times.append(time.perf_counter() - started)
        result[f"batch{batch}"] = statistics.median(times)
        outputs[f"batch{batch}"] = np.asarray(y, dtype=np.float32)
    np.savez(out.with_suffix(".npz"), **outputs)
    out.write_text(json.dumps(result))


def _step_function(model, class_ids, options: dict):
    import torch

    started = time.perf_counter()

    def conditioning(batch: int) -> dict:
        return model.conditioning(class_ids.expand(batch), 1.0)

    if options.get("onnx"):
        return _onnx_step(model, conditioning), time.perf_counter() - started
    net = torch.compile(model.net) if options.get("compile") else model.net

    def step(x, t):
        if options.get("bf16"):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return net(x, t, **conditioning(x.shape[0])).float()
        return net(x, t, **conditioning(x.shape[0]))

    if options.get("compile"):
        with torch.inference_mode():
            step(*inputs(1))   # compiling happens here: the setup time
            step(*inputs(4))
    return step, time.perf_counter() - started


def _onnx_step(model, conditioning):
    import onnxruntime
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model.net

        def forward(self, x, t, embedding):
            return self.net(x, t, embedding=embedding, embedding_scale=1.0)

    path = Path(tempfile.mkdtemp()) / "net.onnx"
    x, t = inputs(1)
    embedding = conditioning(1)["embedding"]
    torch.onnx.export(Net().eval(), (x, t, embedding), str(path), dynamo=False, opset_version=17,
                      input_names=["x", "t", "embedding"], output_names=["v"],
                      dynamic_axes={"x": {0: "batch"}, "t": {0: "batch"}, "embedding": {0: "batch"}, "v": {0: "batch"}})
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def step(x, t):
        feed = {"x": x.numpy(), "t": t.numpy(), "embedding": conditioning(x.shape[0])["embedding"].numpy()}
        return session.run(None, feed)[0]

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        run_variant(args.model, VARIANTS[args.variant], args.repeats, args.out)
        return
    folder = Path(tempfile.mkdtemp())
    results = {}
    for index, name in enumerate(VARIANTS):
        out = folder / f"{index}.json"
        done = subprocess.run([sys.executable, "-m", "benchmarks.cpu_step", "--model", str(args.model),
                               "--repeats", str(args.repeats), "--variant", name, "--out", str(out)],
                              capture_output=True, text=True)
        results[name] = (json.loads(out.read_text()), np.load(out.with_suffix(".npz"))) if done.returncode == 0 \
            else (None, (done.stderr.strip().splitlines() or ["failed"])[-1])
    print(_table(results))


def _table(results: dict) -> str:
    reference, reference_out = results[next(iter(VARIANTS))]
    lines = [f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
             f"median of the step time per variant, each in its own process, one after another.\n",
             "| variant | threads | setup | batch 1: s per step (ratio) | batch 4: s per step (ratio) | max difference / RMS |",
             "|---|---|---|---|---|---|"]
    for name, (timing, out) in results.items():
        if timing is None:
            lines.append(f"| {name} | | | failed: {out} | | |")
            continue
        cells = [f"{timing[b]:.3f} ({timing[b] / reference[b]:.2f})" for b in ("batch1", "batch4")]
        error = max(float(np.abs(out[b] - reference_out[b]).max() / np.sqrt(np.mean(reference_out[b] ** 2)))
                    for b in ("batch1", "batch4"))
        lines.append(f"| {name} | {timing['threads']} | {timing['setup_s']:.1f} s | {cells[0]} | {cells[1]} | {error:.1e} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
