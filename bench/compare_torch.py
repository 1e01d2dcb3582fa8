#!/usr/bin/env python3
"""Compare devnet's feature extractor with PyTorch on the same weights: correctness and speed.

Usage (from the project root):

    /usr/bin/python3 bench/compare_torch.py --backbone build/backbone.safetensors \
        [--devnet build/devnet] [--iters N] [--image PATH] [--sizes 224,448] [--markdown]

What it does
  1. Rebuilds the backbone in PyTorch from the safetensors file, generically from the graph JSON
     in `__metadata__.graph` (conv, dwconv, add, mean, softmax; TensorFlow SAME padding made
     explicit with F.pad where it is asymmetric), so nothing MobileNetV2-specific is hard-coded.
  2. Correctness: `devnet features` at each size with taps final, stride8, stride16 dumps its
     normalised input; PyTorch runs on exactly that input and the maps are compared per tap
     (max abs diff, and max abs diff / max |devnet value|). Exit 1 if the final map's relative
     difference exceeds 1e-3. Preprocessing (decode, resize) is therefore not compared: only the
     network.
  3. Speed: per (size, threads) `devnet bench` runs first, then PyTorch in this process, batch 1,
     features up to the final 1280-channel map, median over --iters after warm-up. With 2
     threads PyTorch is timed both as intra-op parallelism (batch 1) and as throughput (batch 2,
     time / 2), and ours (2 workers, throughput per image) is compared with the faster one.
  4. Prints a table (and with --markdown the same as Markdown for docs/PERFORMANCE.md) and the
     peak RSS of `devnet classify`.

PyTorch configurations timed (the fastest one per row is reported, by name):
  eager          stock eager NCHW, out-of-place activations: the reference column.
  jit-cl         torch.jit.trace + torch.jit.freeze, channels_last, F.conv2d.
  jit-cl-onednn  same, but every convolution forced through oneDNN with torch.mkldnn_convolution
                 (with NCHW input at batch 1 on 1 thread ATen sends 1x1 convolutions to its
                 im2col + BLAS path instead), in-place ReLU6.
  jit-ofi        torch.jit.trace + torch.jit.optimize_for_inference (oneDNN blocked tensors).

Findings on the 2-vCPU AMD EPYC (Zen 4, AVX-512) KVM guest this was written on, torch 1.13.1
(Debian), oneDNN 2.6.3:
  - The three TorchScript variants are within ~10 % of one another and which one wins a row
    changes from run to run; jit-cl-onednn won most often at 448, jit-ofi / jit-cl at 224.
    All three beat stock eager by ~1.2x at 224 and ~1.2-1.4x at 448.
  - This script re-executes itself with GLIBC_TUNABLES=glibc.malloc.hugetlb=1 and
    OPENBLAS_NUM_THREADS=1 (both are read at process start). Huge pages helped eager most
    (448, 1 thread: ~80-90 ms without, ~55-70 ms with) and the TorchScript variants a little.
    Serial OpenBLAS made no measurable difference here (oneDNN does the convolutions); it is
    kept as PLATFORM-NOTES recommends. devnet runs with the caller's environment unchanged
    (it madvises its own arenas; the tunable did not change its timings).
  - oneDNN picks its brgconv/brdgmm AVX-512 kernels; convolution is >80 % of the time and the
    timed loop has no page faults. Capping the oneDNN ISA at AVX2, OMP_PROC_BIND and
    OMP_WAIT_POLICY made no difference beyond noise. The PLATFORM-NOTES figures (~20 ms at 448
    on 1 thread) were not reproduced on this machine: ~38-42 ms at best.
  - Two independent 1-thread PyTorch forwards from two Python threads (the way devnet's workers
    run) were not faster than batch 2 on 2 threads, so that mode is not timed.
  - Cropping the first row/column instead of F.pad for the stride-2 SAME padding is NOT
    equivalent (it shifts the sampling grid by one pixel): the explicit F.pad is needed.
  - Other work on the machine shows up as noise (one 2-core VM): the 1-minute load average is
    printed, candidates are timed round-robin and medians are used.

Exit status: 0 ok, 1 correctness failure or a devnet command failed, 2 setup problem (torch
missing, backbone or devnet missing, bad arguments).
"""

import argparse
import importlib
import json
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REL_TOL = 1e-3
TAPS = ("final", "stride8", "stride16")
THREADS = (1, 2)
WARMUP = 5

# Variables this script sets for its own (PyTorch) process; devnet gets the caller's values back.
_CHILD_FLAG = "DEVNET_COMPARE_TORCH_TUNED"
_ORIG_ENV = "DEVNET_COMPARE_TORCH_ORIG_ENV"
_TUNED_VARS = ("OPENBLAS_NUM_THREADS", "GLIBC_TUNABLES")


def die(msg, code=2):
    print(f"compare_torch: error: {msg}", file=sys.stderr)
    sys.exit(code)


# ---------------------------------------------------------------------------------------------
# Process environment
# ---------------------------------------------------------------------------------------------

def reexec_with_tuned_env():
    """Restart once with the settings PyTorch needs to be at its fastest here.

    glibc reads GLIBC_TUNABLES and OpenBLAS reads OPENBLAS_NUM_THREADS when the process starts,
    so setting them from Python after the fact would do nothing. OPENBLAS_CORETYPE and
    OPENBLAS_L2_SIZE are deliberately left as the caller has them.
    """
    if os.environ.get(_CHILD_FLAG) == "1":
        return
    env = dict(os.environ)
    env[_ORIG_ENV] = json.dumps({k: os.environ.get(k) for k in _TUNED_VARS})
    env[_CHILD_FLAG] = "1"
    # Serial OpenBLAS: its own pthreads would fight PyTorch's OpenMP threads for 2 cores.
    env["OPENBLAS_NUM_THREADS"] = "1"
    tunables = env.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb" not in tunables:
        # Transparent huge pages for malloc: without them timings are bimodal on this machine.
        env["GLIBC_TUNABLES"] = ":".join(t for t in (tunables, "glibc.malloc.hugetlb=1") if t)
    script = str(Path(__file__).resolve())
    os.execve(sys.executable, [sys.executable, script, *sys.argv[1:]], env)


def devnet_env():
    """The caller's environment as it was before the re-exec: devnet is measured as shipped."""
    env = dict(os.environ)
    orig = json.loads(env.pop(_ORIG_ENV, "{}"))
    env.pop(_CHILD_FLAG, None)
    for key, value in orig.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def import_torch():
    try:
        importlib.import_module("numpy")
    except ImportError:
        die(f"numpy is not importable by {sys.executable}: apt-get install python3-numpy "
            "(Debian's packages are for /usr/bin/python3)")
    try:
        importlib.import_module("torch")
    except ImportError:
        die(f"PyTorch is not importable by {sys.executable}: apt-get install python3-torch "
            "(Debian's packages are for /usr/bin/python3)")


# ---------------------------------------------------------------------------------------------
# Backbone file and the PyTorch network built from its graph
# ---------------------------------------------------------------------------------------------

def load_backbone(path):
    """Return (graph, {tensor name: float32 numpy array}) from a devnet safetensors file."""
    import numpy as np
    blob = Path(path).read_bytes()
    if len(blob) < 8:
        die(f"{path}: too short for a safetensors file")
    (hlen,) = struct.unpack_from("<Q", blob, 0)
    if 8 + hlen > len(blob):
        die(f"{path}: header length {hlen} runs past the end of the file")
    try:
        header = json.loads(blob[8:8 + hlen])
        meta = header.pop("__metadata__", {})
        graph = json.loads(meta["graph"])
    except (ValueError, KeyError, TypeError) as e:
        die(f"{path}: no readable __metadata__.graph ({e})")
    base = 8 + hlen
    tensors = {}
    for name, info in header.items():
        if info.get("dtype") != "F32":
            die(f"{path}: tensor {name} is {info.get('dtype')}, only F32 is supported")
        begin, end = info["data_offsets"]
        arr = np.frombuffer(blob, dtype="<f4", count=(end - begin) // 4, offset=base + begin)
        tensors[name] = arr.reshape(info["shape"]).copy()
    return graph, tensors


def same_padding(size, k, s):
    """TensorFlow SAME: output ceil(in/s); any odd padding goes to the bottom/right."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2, out


def build_net_class():
    import torch
    import torch.nn.functional as F

    class GraphNet(torch.nn.Module):
        """Executes the backbone graph for one fixed input size.

        Padding is computed here, per size, as plain Python ints, so that a traced module holds
        constants instead of shape arithmetic. Only nodes that the requested outputs depend on
        are kept, which stops the features at the final map (no pooling/classifier).
        """

        def __init__(self, graph, tensors, size, outputs, onednn=False, inplace=False):
            super().__init__()
            self.onednn = onednn
            self.inplace = inplace
            self.outputs = list(outputs)
            nodes = {n["name"]: n for n in graph["nodes"]}
            for o in self.outputs:
                if o not in nodes:
                    raise ValueError(f"output {o!r} is not a node of the graph")
            needed, stack = set(), list(self.outputs)
            while stack:
                name = stack.pop()
                if name == "input" or name in needed:
                    continue
                needed.add(name)
                stack.extend(nodes[name]["inputs"])

            shapes = {"input": (size, size, int(graph["input"].get("channels", 3)))}
            self.steps = []
            for i, nd in enumerate(n for n in graph["nodes"] if n["name"] in needed):
                name, op = nd["name"], nd["op"]
                for src in nd["inputs"]:
                    if src not in shapes:
                        raise ValueError(f"node {name}: input {src!r} not defined before it")
                h, w, c = shapes[nd["inputs"][0]]
                step = {"name": name, "op": op, "inputs": list(nd["inputs"]),
                        "act": nd.get("activation", "none")}
                if op in ("conv", "dwconv"):
                    kh, kw = nd["kernel"]
                    sh, sw = nd["stride"]
                    wt = tensors[name + ".weight"]
                    bias = tensors[name + ".bias"]
                    if c != nd["cin"]:
                        raise ValueError(f"node {name}: input has {c} channels, cin is {nd['cin']}")
                    if op == "conv":  # OHWI -> OIHW
                        if tuple(wt.shape) != (nd["cout"], kh, kw, nd["cin"]):
                            raise ValueError(f"node {name}: weight shape {wt.shape}")
                        weight = torch.from_numpy(wt).permute(0, 3, 1, 2).contiguous()
                        groups = 1
                    else:  # [KH, KW, C] -> [C, 1, KH, KW]
                        if tuple(wt.shape) != (kh, kw, nd["cin"]) or nd["cout"] != nd["cin"]:
                            raise ValueError(f"node {name}: depthwise weight shape {wt.shape}")
                        weight = torch.from_numpy(wt).permute(2, 0, 1).unsqueeze(1).contiguous()
                        groups = nd["cin"]
                    if nd.get("padding", "same") == "same":
                        pt, pb, oh = same_padding(h, kh, sh)
                        pl, pr, ow = same_padding(w, kw, sw)
                    else:
                        pt = pb = pl = pr = 0
                        oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
                    self.register_buffer(f"w{i}", weight)
                    self.register_buffer(f"b{i}", torch.from_numpy(bias).contiguous())
                    # Symmetric padding goes into the convolution; only the asymmetric SAME case
                    # (stride 2 on even sizes) needs an explicit F.pad to match TensorFlow.
                    step.update(w=f"w{i}", b=f"b{i}", stride=(sh, sw), groups=groups,
                                pad=None if (pt == pb and pl == pr) else (pl, pr, pt, pb),
                                conv_pad=(pt, pl) if (pt == pb and pl == pr) else (0, 0))
                    shapes[name] = (oh, ow, nd["cout"])
                elif op == "add":
                    if len({shapes[s] for s in nd["inputs"]}) != 1:
                        raise ValueError(f"node {name}: add of different shapes")
                    shapes[name] = (h, w, c)
                elif op == "mean":
                    shapes[name] = (1, 1, c)
                elif op == "softmax":
                    shapes[name] = (h, w, c)
                else:
                    raise ValueError(f"node {name}: unsupported op {op!r}")
                self.steps.append(step)
            self.shapes = {o: shapes[o] for o in self.outputs}

            # Free each intermediate after its last use (matters for eager mode's memory reuse).
            last_use = {}
            for j, st in enumerate(self.steps):
                for src in st["inputs"]:
                    last_use[src] = j
            for j, st in enumerate(self.steps):
                st["drop"] = [s for s in st["inputs"]
                              if last_use.get(s) == j and s not in self.outputs]

        def forward(self, x):
            vals = {"input": x}
            for st in self.steps:
                op = st["op"]
                a = vals[st["inputs"][0]]
                if op in ("conv", "dwconv"):
                    if st["pad"] is not None:
                        a = F.pad(a, st["pad"])
                    w, b = getattr(self, st["w"]), getattr(self, st["b"])
                    if self.onednn:
                        y = torch.mkldnn_convolution(a, w, b, st["conv_pad"], st["stride"],
                                                     (1, 1), st["groups"])
                    else:
                        y = F.conv2d(a, w, b, st["stride"], st["conv_pad"], 1, st["groups"])
                elif op == "add":
                    y = a + vals[st["inputs"][1]]
                elif op == "mean":
                    y = a.mean((2, 3), keepdim=True)
                else:  # softmax over channels
                    y = F.softmax(a, dim=1)
                act = st["act"]
                if act == "relu":
                    y = F.relu_(y) if self.inplace else F.relu(y)
                elif act == "relu6":
                    y = F.hardtanh_(y, 0.0, 6.0) if self.inplace else F.hardtanh(y, 0.0, 6.0)
                elif act != "none":
                    raise ValueError(f"node {st['name']}: unsupported activation {act!r}")
                vals[st["name"]] = y
                for s in st["drop"]:
                    del vals[s]
            return tuple(vals[o] for o in self.outputs)

    return GraphNet


# (key, description, channels_last, jit mode, force oneDNN conv, in-place activations)
CANDIDATES = (
    ("eager", "eager NCHW (stock)", False, None, False, False),
    ("jit-cl", "trace+freeze, channels_last", True, "freeze", False, True),
    ("jit-cl-onednn", "trace+freeze, channels_last, oneDNN conv forced", True, "freeze", True, True),
    ("jit-ofi", "trace+optimize_for_inference (oneDNN tensors)", False, "ofi", False, True),
)


def make_candidate(GraphNet, graph, tensors, size, batch, final, spec):
    import torch
    _key, _desc, channels_last, jit, onednn, inplace = spec
    net = GraphNet(graph, tensors, size, [final], onednn=onednn, inplace=inplace).eval()
    x = torch.zeros(batch, int(graph["input"].get("channels", 3)), size, size)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    with torch.no_grad():
        if jit == "freeze":
            net = torch.jit.freeze(torch.jit.trace(net, to_layout(x, channels_last)))
        elif jit == "ofi":
            net = torch.jit.optimize_for_inference(torch.jit.trace(net, x))
    return net


def to_layout(x, channels_last):
    import torch
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


# ---------------------------------------------------------------------------------------------
# devnet
# ---------------------------------------------------------------------------------------------

def run_devnet(args, what, timeout=900):
    try:
        p = subprocess.run(args, capture_output=True, text=True, env=devnet_env(), timeout=timeout)
    except subprocess.TimeoutExpired:
        die(f"{what} timed out after {timeout} s: {' '.join(args)}", 1)
    if p.returncode != 0:
        die(f"{what} failed (exit {p.returncode}): {' '.join(args)}\n{p.stderr.strip()[-2000:]}", 1)
    return p.stdout


def devnet_features(devnet, backbone, size, image, tmp):
    """Run `devnet features`; return (input HWC array, [(tap name, HWC array)])."""
    import numpy as np
    in_path, out_path = Path(tmp) / f"in{size}.f32", Path(tmp) / f"out{size}.f32"
    cmd = [devnet, "features", "--backbone", backbone, "--size", str(size)]
    for t in TAPS:
        cmd += ["--tap", t]
    cmd += ["--dump-input", str(in_path), "-o", str(out_path), image]
    out = run_devnet(cmd, "devnet features")
    taps = []
    for line in out.splitlines():
        f = line.split("\t")
        if len(f) == 4:
            taps.append((f[0], int(f[1]), int(f[2]), int(f[3])))
    if len(taps) != len(TAPS):
        die(f"devnet features printed {len(taps)} tap lines, expected {len(TAPS)}:\n{out}", 1)
    x = np.fromfile(in_path, dtype="<f4")
    if x.size % (size * size):
        die(f"{in_path}: {x.size} floats is not a {size}x{size} image", 1)
    x = x.reshape(size, size, -1)
    maps, flat, off = [], np.fromfile(out_path, dtype="<f4"), 0
    for name, h, w, c in taps:
        maps.append((name, flat[off:off + h * w * c].reshape(h, w, c)))
        off += h * w * c
    if off != flat.size:
        die(f"{out_path}: {flat.size} floats, the taps account for {off}", 1)
    return x, maps


def devnet_bench(devnet, backbone, size, threads, iters):
    out = run_devnet([devnet, "bench", "--backbone", backbone, "--size", str(size),
                      "--threads", str(threads), "--iters", str(iters), "--json"], "devnet bench")
    lines = [ln for ln in out.splitlines() if ln.strip()]
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        die(f"devnet bench: last line is not JSON:\n{out}", 1)


def classify_peak_rss_kb(devnet, backbone, image):
    """Peak RSS of one `devnet classify`. Must run before any other child process when the
    getrusage fallback is used: RUSAGE_CHILDREN reports the largest child so far."""
    cmd = [devnet, "classify", "--backbone", backbone, image]
    gnu_time = shutil.which("time", path="/usr/bin:/bin")
    if gnu_time:
        out = subprocess.run([gnu_time, "-v", *cmd], capture_output=True, text=True,
                             env=devnet_env(), timeout=300)
        m = re.search(r"Maximum resident set size \(kbytes\):\s*(\d+)", out.stderr)
        if out.returncode != 0:
            die(f"devnet classify failed (exit {out.returncode}): {' '.join(cmd)}\n"
                f"{out.stderr.strip()[-2000:]}", 1)
        if m:
            return int(m.group(1)), "/usr/bin/time -v"
    import resource
    run_devnet(cmd, "devnet classify")
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "getrusage(RUSAGE_CHILDREN)"


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------

def write_synthetic_png(path, width=400, height=300):
    """A deterministic textured RGB image, written without any imaging library."""
    import numpy as np
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 128 + 100 * np.sin(xx / 23.0) * np.cos(yy / 31.0)
    g = 128 + 90 * np.sin((xx + yy) / 17.0)
    b = np.where(((xx // 40 + yy // 40) % 2) == 0, 200.0, 40.0)
    rgb = np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)
    raw = b"".join(b"\x00" + rgb[i].tobytes() for i in range(height))

    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n"
                           + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def pick_image(arg, tmp):
    if arg:
        if not Path(arg).is_file():
            die(f"image {arg} not found")
        return arg, arg
    shared = Path(os.environ.get("DEVNET_SHARED", ROOT.parent / "shared"))
    default = shared / "images" / "parrot.jpg"
    if default.is_file():
        return str(default), str(default)
    path = str(Path(tmp) / "synthetic.png")
    write_synthetic_png(path)
    return path, f"synthetic 400x300 PNG ({shared} not found)"


# ---------------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------------

def time_round_robin(runs, iters):
    """Median ms per image of each (key, module, input, batch).

    The candidates take turns within each iteration so that a burst of load from elsewhere on
    the machine hits all of them alike instead of whichever happened to be running.
    """
    import torch
    samples = {key: [] for key, *_ in runs}
    with torch.no_grad():
        for _ in range(WARMUP):  # also lets the TorchScript profiling executor specialise
            for _key, mod, x, _b in runs:
                mod(x)
        for _ in range(iters):
            for key, mod, x, batch in runs:
                t0 = time.perf_counter()
                mod(x)
                samples[key].append((time.perf_counter() - t0) * 1e3 / batch)
    return {k: statistics.median(v) for k, v in samples.items()}


def max_diffs(ours, ref):
    import numpy as np
    diff = float(np.max(np.abs(ours.astype(np.float64) - ref)))
    scale = float(np.max(np.abs(ref)))
    return diff, diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))


def machine_summary():
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return cpu, os.cpu_count(), os.getloadavg()[0]


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def parse_args():
    ap = argparse.ArgumentParser(description="Compare devnet with PyTorch: correctness and speed.")
    ap.add_argument("--backbone", required=True, help="devnet backbone .safetensors")
    ap.add_argument("--devnet", default=str(ROOT / "build" / "devnet"), help="devnet binary")
    ap.add_argument("--iters", type=int, default=50, help="timed iterations per configuration")
    ap.add_argument("--image", help="image for the correctness check (default: shared parrot.jpg)")
    ap.add_argument("--sizes", default="224,448", help="comma-separated input sizes")
    ap.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    args = ap.parse_args()
    if args.iters < 1:
        die("--iters must be at least 1")
    try:
        args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        die(f"--sizes: not a list of integers: {args.sizes}")
    if not args.sizes or min(args.sizes) < 32:
        die("--sizes: give sizes of at least 32")
    if not Path(args.backbone).is_file():
        die(f"backbone {args.backbone} not found (make one with: devnet import-backbone "
            "MODEL.tflite -o OUT.safetensors)")
    if not (Path(args.devnet).is_file() and os.access(args.devnet, os.X_OK)):
        die(f"devnet binary {args.devnet} not found or not executable (make build/devnet)")
    args.devnet = str(Path(args.devnet).resolve())
    args.backbone = str(Path(args.backbone).resolve())
    return args


def main():
    args = parse_args()  # before the re-exec, so that usage errors come back at once
    reexec_with_tuned_env()
    import_torch()
    import numpy as np
    import torch

    usage = subprocess.run([args.devnet, "--help"], capture_output=True, text=True)
    helptext = usage.stdout + usage.stderr
    for cmd in ("features", "bench", "classify"):
        if cmd not in helptext:
            die(f"{args.devnet} has no '{cmd}' command (rebuild it: make build/devnet)")

    graph, tensors = load_backbone(args.backbone)
    GraphNet = build_net_class()
    torch.set_num_threads(max(THREADS))
    cpu, ncpu, load = machine_summary()

    tmp_dir = tempfile.TemporaryDirectory(prefix="compare_torch_")
    tmp = tmp_dir.name
    image, image_desc = pick_image(args.image, tmp)

    print(f"machine: {cpu}, {ncpu} CPUs, load average (1 min) {load:.2f}")
    if load > 0.5:
        print("  warning: the machine is busy; timings will be noisy")
    print(f"torch {torch.__version__}, oneDNN available: {torch.backends.mkldnn.is_available()}; "
          f"PyTorch process: OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')} "
          f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES')}; devnet: caller's environment")
    print(f"devnet: {args.devnet}\nbackbone: {args.backbone}\nimage: {image_desc}")

    # First child process on purpose: see classify_peak_rss_kb.
    rss_kb, rss_how = classify_peak_rss_kb(args.devnet, args.backbone, image)
    print(f"\npeak RSS of `devnet classify`: {rss_kb / 1024:.1f} MiB ({rss_kb} kB, {rss_how})")

    # ---- correctness -------------------------------------------------------------------------
    print("\ncorrectness (devnet vs PyTorch eager on devnet's normalised input)")
    print(f"  {'size':>4}  {'tap':<9} {'node':<24} {'h x w x c':<15} {'max abs diff':>12}  "
          f"{'rel diff':>9}")
    failed = False
    inputs, finals = {}, {}
    for size in args.sizes:
        x_hwc, maps = devnet_features(args.devnet, args.backbone, size, image, tmp)
        names = [name for name, _ in maps]
        try:
            ref = GraphNet(graph, tensors, size, names).eval()
        except (ValueError, KeyError) as e:
            die(f"cannot build the PyTorch network from the graph: {e}")
        x = torch.from_numpy(np.ascontiguousarray(x_hwc)).permute(2, 0, 1).unsqueeze(0).contiguous()
        with torch.no_grad():
            outs = ref(x)
        for tap, (name, dmap), out in zip(TAPS, maps, outs):
            ours = out[0].permute(1, 2, 0).numpy()
            if ours.shape != dmap.shape:
                die(f"size {size} tap {tap}: PyTorch shape {ours.shape}, devnet {dmap.shape}", 1)
            d, r = max_diffs(ours, dmap)
            bad = tap == "final" and not r <= REL_TOL
            failed |= bad
            h, w, c = dmap.shape
            print(f"  {size:>4}  {tap:<9} {name:<24} {f'{h}x{w}x{c}':<15} {d:>12.3e}  {r:>9.2e}"
                  f"{'  FAIL' if bad else ''}")
        inputs[size] = x
        finals[size] = (names[0], maps[0][1])
    if failed:
        print(f"\nFAIL: the final map differs by more than {REL_TOL:g} of its max |value|")
        return 1

    # ---- speed ---------------------------------------------------------------------------------
    print(f"\nspeed: median of {args.iters} iterations after {WARMUP} warm-up, ms per image")
    rows = []
    ours_ms = {}
    for size in args.sizes:
        final, dmap = finals[size]
        # Build every timed variant and check it computes the same map as devnet: a fast but
        # wrong configuration must not win.
        built = {}
        for batch in (1, 2):
            for spec in CANDIDATES:
                if batch == 2 and spec[0] == "eager":
                    continue  # eager is the batch-1 reference column only
                mod = make_candidate(GraphNet, graph, tensors, size, batch, final, spec)
                x = to_layout(inputs[size].repeat(batch, 1, 1, 1), spec[2])
                with torch.no_grad():
                    out = mod(x)[0]
                _, r = max_diffs(out[-1].permute(1, 2, 0).contiguous().numpy(), dmap)
                if not r <= REL_TOL:
                    print(f"  warning: {spec[0]} batch {batch} at {size} is off by {r:.2e}; "
                          "not timed")
                    continue
                built[(spec[0], batch)] = (mod, x)

        for threads in THREADS:
            bench = devnet_bench(args.devnet, args.backbone, size, threads, args.iters)
            ours_ms[(size, threads)] = float(bench["ms_per_image"])

            torch.set_num_threads(threads)
            batches = (1,) if threads == 1 else (1, 2)
            runs = [(f"{key} b{b}", mod, x, b)
                    for (key, b), (mod, x) in built.items() if b in batches]
            med = time_round_robin(runs, args.iters)
            best = min(med, key=med.get)
            rows.append({
                "size": size, "threads": threads, "ours": ours_ms[(size, threads)],
                "torch": med[best],
                "torch_cfg": best.replace(" b1", "").replace(" b2", ", batch 2"),
                "eager": med.get("eager b1", float("nan")),
            })
            print(f"  {size}x{size}, {threads} thread(s): devnet {ours_ms[(size, threads)]:.2f} "
                  f"(single-pass latency {float(bench.get('latency_ms', float('nan'))):.2f}), "
                  + ", ".join(f"{k} {v:.2f}" for k, v in med.items()), flush=True)
        del built

    for row in rows:
        one = ours_ms.get((row["size"], 1))
        row["speedup"] = one / row["ours"] if row["threads"] > 1 and one else None

    print_table(rows, args, cpu, ncpu, rss_kb)
    return 0


def print_table(rows, args, cpu, ncpu, rss_kb):
    heads = ("size", "threads", "ours ms/img", "pytorch ms/img", "pytorch config",
             "pytorch eager ms", "ours/pytorch", "ours 2T speed-up")
    cells = []
    for r in rows:
        cells.append((f"{r['size']}", f"{r['threads']}", f"{r['ours']:.2f}", f"{r['torch']:.2f}",
                      r["torch_cfg"], f"{r['eager']:.2f}", f"{r['ours'] / r['torch']:.2f}",
                      f"{r['speedup']:.2f}x" if r["speedup"] else "-"))
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    print("\nsummary (ms per image; ours/pytorch < 1 means devnet is faster; with 2 threads devnet "
          "is 2 workers' throughput, PyTorch the faster of intra-op batch 1 and batch 2)")
    for line in (heads, *cells):  # the config name is text: left-aligned, numbers right-aligned
        print("  " + "  ".join(v.ljust(w) if i == 4 else v.rjust(w)
                               for i, (v, w) in enumerate(zip(line, widths))))
    print(f"peak RSS of `devnet classify`: {rss_kb / 1024:.1f} MiB")

    if args.markdown:
        print()
        print("| " + " | ".join(heads) + " |")
        print("|" + "|".join("---:" if i != 4 else "---" for i in range(len(heads))) + "|")
        for c in cells:
            print("| " + " | ".join(c) + " |")
        print()
        print(f"Measured with `bench/compare_torch.py --iters {args.iters}` on {cpu} ({ncpu} CPUs); "
              "batch 1 unless stated; median ms per image. With 2 threads devnet runs 2 workers "
              "(throughput per image) and PyTorch is the faster of intra-op parallelism at batch 1 "
              "and batch 2. PyTorch configurations: "
              + "; ".join(f"`{k}` = {d}" for k, d, *_ in CANDIDATES)
              + ". PyTorch ran with `OPENBLAS_NUM_THREADS=1` and "
              "`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`. "
              f"Peak RSS of `devnet classify`: {rss_kb / 1024:.1f} MiB.")


if __name__ == "__main__":
    sys.exit(main())
