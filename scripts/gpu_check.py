"""Prepared GPU check for issue 15 (run it only on a machine with CUDA; it has never run yet).

    PYTHONPATH=src python scripts/gpu_check.py --out gpu-check.json

1. Every cipher's torch kernel on CUDA is bit-exact against the CPU path
   (numba / OpenSSL), on random words with NaN payloads, -0.0, inf, denormals.
2. Throughput of each kernel against a device-to-device copy of the same tensor
   (goal: >= 50 % for fixed ShuffleBits and ChaChaPad), timed with CUDA events.
3. OSNet-x0.25 extraction images/s on CUDA with and without ``EncryptedOutput``.

Prints one JSON document (date, device name, every figure) and writes it to
``--out``; the README's GPU figures are pasted from it with the date and device.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys

import numpy as np
import torch

from shufflebits.ciphers import ChaChaPad, ShuffleBits, generate_key, kernels_torch, prf
from shufflebits.nn import EncryptedOutput
from shufflebits.registry import create_cipher, create_model

SPECIALS = [0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC0DEAD, 0xFF800001, 0x00000001, 0x807FFFFF]


def cuda_seconds(run, repeats: int = 20) -> list[float]:
    """Per-run seconds from CUDA events, after one warm-up run."""
    run()
    times = []
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop) / 1e3)
    return times


def bit_exact(device: str) -> dict:
    rng = np.random.default_rng(0)
    words = rng.integers(0, 2**32, (257, 515), dtype=np.uint32)
    words[0, : len(SPECIALS)] = SPECIALS
    x_cpu = torch.from_numpy(words.view(np.float32).copy())
    x = x_cpu.to(device)
    results = {}
    for name in ("shufflebits", "shufflebits-dim", "shufflebits-otp", "chacha20"):
        cipher = create_cipher(name)
        ciphertext, nonces = cipher.encrypt_tensor(x)
        got = ciphertext.cpu().view(torch.int32).numpy().view(np.uint32)
        if nonces is None:
            want = cipher.encrypt(words.view(np.float32)).words()
        elif name == "chacha20":
            want = cipher._xor(words, nonces.cpu().numpy())
        else:
            want = cipher._apply(words, nonces.cpu().numpy(), decrypt=False)[0]
        results[name] = bool(np.array_equal(got, want))
    return results


def throughput(device: str, rows: int = 32768, d: int = 512) -> dict:
    x = torch.rand(rows, d, device=device)
    words = kernels_torch.int_view(x)
    elements = x.numel()
    copy = cuda_seconds(lambda: x.clone())
    fixed = ShuffleBits(generate_key("shufflebits"))
    per_dim = ShuffleBits(generate_key("shufflebits-dim"))
    one_time = ShuffleBits(generate_key("shufflebits-otp"))
    pad = ChaChaPad(generate_key("chacha20"))
    nonces = torch.from_numpy(prf.batch_nonces(rows, -(-d * 4 // 64), lambda n: bytes(n))).to(device)
    pad_key = kernels_torch.key_tensor(pad.stream_key, device)
    cases = {
        "device copy": copy,
        "ShuffleBits fixed": cuda_seconds(lambda: fixed.encrypt_tensor(x)),
        "ShuffleBits per-dimension": cuda_seconds(lambda: per_dim.encrypt_tensor(x)),
        "ShuffleBits one-time (host keystream + upload)": cuda_seconds(lambda: one_time.encrypt_tensor(x), 5),
        "ChaChaPad encrypt_tensor": cuda_seconds(lambda: pad.encrypt_tensor(x)),
        "ChaChaPad xor_pad kernel": cuda_seconds(lambda: kernels_torch.xor_pad(words, pad_key, nonces)),
        "ChaChaPad xor_pad kernel, torch.compile": cuda_seconds(
            lambda: kernels_torch.xor_pad(words, pad_key, nonces, compiled=True)
        ),
    }
    best_copy = min(copy)
    return {
        name: {
            "mfloat_per_s": elements / min(times) / 1e6,
            "mfloat_per_s_median": elements / float(np.median(times)) / 1e6,
            "fraction_of_copy": best_copy / min(times),
        }
        for name, times in cases.items()
    }


def extraction(device: str, batch: int = 64, size=(256, 128)) -> dict:
    model = create_model("osnet_x0_25", num_classes=10).eval().to(device)
    images = torch.rand(batch, 3, *size, device=device)
    out = {}
    for name in ("plaintext", "shufflebits", "chacha20"):
        module = model if name == "plaintext" else EncryptedOutput(model, create_cipher(name)).eval()
        with torch.inference_mode():
            times = cuda_seconds(lambda m=module: m(images), 10)
        out[name] = {"images_per_s": batch / min(times), "images_per_s_median": batch / float(np.median(times))}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu-check.json")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device; nothing measured", file=sys.stderr)
        return 2
    device = "cuda"
    report = {
        "date": datetime.date.today().isoformat(),
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "bit_exact_vs_cpu": bit_exact(device),
        "throughput_64mib": throughput(device),
        "osnet_x0_25_extraction": extraction(device),
    }
    text = json.dumps(report, indent=2)
    print(text)
    with open(args.out, "w") as handle:
        handle.write(text + "\n")
    return 0 if all(report["bit_exact_vs_cpu"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
