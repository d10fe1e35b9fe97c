#!/usr/bin/env python3
"""PyTorch-on-CPU training-throughput baseline for convnet's two reference nets.

Builds, in PyTorch, the same architectures as

  80sec    layer-defs/cifar10-80sec.cfg      + params/cifar10-80sec.cfg
  alexnet  layer-defs/alexnet-2012-1gpu.cfg  + params/alexnet-2012-1gpu.cfg

(same layer shapes, paddings, strides and pooling windows; the same learning rates,
momenta and weight decays), feeds them synthetic random batches, runs a few warm-up
training steps and then times N steps of forward + backward + SGD update. The last
line printed is

  bench: <images/s> images/s

in the format of `convnet --bench N`, so the two figures can be set side by side.

The layer files are not parsed here: the two nets are written out by hand below,
each layer commented with the cfg section it stands for.

Mapping of cuda-convnet layers onto PyTorch:

- conv (sharedBiases=1)      -> nn.Conv2d with one bias per filter.
- pool (max / avg)           -> max_pool2d / avg_pool2d with ceil_mode=True. cuda-convnet
  makes outputsX = ceil((imgSize - start - sizeX) / stride) + 1 windows (start=0), the
  last ones clipped to the image; ceil_mode=True gives the same count (32 -> 16 with
  3x3/2, where floor mode would give 15). For avg, both divide by the number of pixels
  of the clipped window (PyTorch: padding=0, so the divisor is the clipped size).
- cmrnorm (cross-map response norm, 2012 form with minDiv)
  -> nn.LocalResponseNorm(size, alpha=scale, beta=pow, k=minDiv).
  cuda-convnet's parser divides scale by size, the denominator is
  (minDiv + scale/size * sum over channels f-size/2 .. f+size/2 of x^2)^pow, which is
  PyTorch's formula with the same window. Not bit-identical: cuda-convnet uses the
  fast __powf. Applied per tower (48 / 128 maps each), as the cfg has one layer per
  tower, so the window never crosses the tower boundary.
- rnorm (same-map spatial response norm, x / (1 + scale/size^2 * sum over a size x size
  window of x^2)^pow) has no PyTorch op. Neither bench net uses it; SpatialResponseNorm
  below composes it from avg_pool2d of the squares (count_include_pad=True, so the
  divisor stays size^2 at the borders as in cuda-convnet). Same formula, but a composite
  of generic ops rather than one fused kernel, and again not bit-identical (__powf).
- fc                         -> nn.Linear. A layer with two inputs (fc6, fc7, fc8 read
  both towers) is one Linear over the concatenated inputs: the sum of two products is
  one product with the stacked weight matrix.
- neuron=relu                -> ReLU (in place).
- hs (dropout, keep=0.5, enable=true) -> nn.Dropout(0.5). PyTorch scales the kept units
  by 1/keep while training; the 2012 code's exact scaling convention does not change the
  work done.
- softmax + cost.logreg      -> F.cross_entropy (log-softmax + NLL, mean over the batch).
- Two towers (alexnet-2012-1gpu puts both on one device): conv1a+conv1b (both read the
  data) = one conv with 96 filters; conv2, conv4, conv5 read only their own tower =
  groups=2 convs; conv3a/conv3b read both towers (two weight sets whose outputs are
  summed) = one full conv 256 -> 384. Same shapes and arithmetic, fewer kernel launches.
- Update: cuda-convnet's inc = mom*inc - eps*wc*w + eps*grad/numCases; w += inc is
  torch.optim.SGD(lr=eps, momentum=mom, weight_decay=wc) on the batch-mean loss; biases
  get epsB, momB and no decay, as in cuda-convnet. The 2012 dexp learning-rate schedules
  are not applied (they do not change the per-step work).
- Weights start as N(0, initW^2), biases at initB, as in the cfg.

Data: one pre-generated synthetic batch (N(0,1) pixels, uniform random labels) reused
every step, so no data loading or augmentation is timed.
"""

import argparse
import os
import sys
import time


def _threads_from_argv(argv):
    """--threads T, read before torch is imported: the BLAS library's own thread pool
    (OpenBLAS's pthreads build ignores torch.set_num_threads in Debian's torch, which is
    built with BLAS=generic) only reads its variable when it loads."""
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return "2"


_T = _threads_from_argv(sys.argv[1:])
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, _T)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


class SpatialResponseNorm(nn.Module):
    """Closest PyTorch form of cuda-convnet's `rnorm` (same-map response norm):
    x / (1 + scale/size^2 * sum_{size x size window} x^2)^pow. Approximated with
    avg_pool2d over the squares (count_include_pad=True, so the divisor is always
    size^2 as in cuda-convnet; the window is centred, padding size//2). Unused by the
    two bench nets; kept for nets that have rnorm layers."""

    def __init__(self, size, scale, pow_):
        super().__init__()
        self.size, self.scale, self.pow = size, scale, pow_

    def forward(self, x):
        s = self.size
        sq = F.avg_pool2d(x * x, s, stride=1, padding=s // 2, count_include_pad=True)
        sq = sq[..., : x.shape[-2], : x.shape[-1]]
        # avg over size^2 already divides by size^2: scale/size^2 * sum = scale * avg
        return x * (1.0 + self.scale * sq).pow(-self.pow)


class PerTower(nn.Module):
    """Applies one module to each of `towers` equal channel slices (cfg: one layer per
    tower, e.g. rnorm1a and rnorm1b)."""

    def __init__(self, towers, make):
        super().__init__()
        self.mods = nn.ModuleList(make() for _ in range(towers))

    def forward(self, x):
        xs = torch.chunk(x, len(self.mods), dim=1)
        return torch.cat([m(t) for m, t in zip(self.mods, xs)], dim=1)


def init_layer(layer, init_w, init_b=0.0):
    nn.init.normal_(layer.weight, 0.0, init_w)
    nn.init.constant_(layer.bias, init_b)
    return layer


class Cifar80Sec(nn.Module):
    """layer-defs/cifar10-80sec.cfg:
    32x32x3 -> conv1 32x32x32 -> pool1 16x16x32 -> conv2 16x16x32 -> pool2 8x8x32
    -> conv3 8x8x64 -> pool3 4x4x64 (1024) -> fc64 -> fc10."""

    image = (3, 32, 32)
    classes = 10

    def __init__(self):
        super().__init__()
        self.conv1 = init_layer(nn.Conv2d(3, 32, 5, stride=1, padding=2), 0.0001)
        self.conv2 = init_layer(nn.Conv2d(32, 32, 5, stride=1, padding=2), 0.01)
        self.conv3 = init_layer(nn.Conv2d(32, 64, 5, stride=1, padding=2), 0.01)
        self.fc64 = init_layer(nn.Linear(4 * 4 * 64, 64), 0.1)
        self.fc10 = init_layer(nn.Linear(64, 10), 0.1)

    def forward(self, x):
        x = self.conv1(x)  # conv1: no neuron of its own
        x = F.max_pool2d(x, 3, stride=2, ceil_mode=True)  # pool1 (max) 32 -> 16
        x = F.relu(x, inplace=True)  # pool1 neuron=relu
        x = F.relu(self.conv2(x), inplace=True)  # conv2 neuron=relu
        x = F.avg_pool2d(x, 3, stride=2, ceil_mode=True)  # pool2 (avg) 16 -> 8
        x = F.relu(self.conv3(x), inplace=True)  # conv3 neuron=relu
        x = F.avg_pool2d(x, 3, stride=2, ceil_mode=True)  # pool3 (avg) 8 -> 4
        x = torch.flatten(x, 1)  # channel-major, as cuda-convnet's layout
        x = F.relu(self.fc64(x), inplace=True)  # fc64 neuron=relu
        return self.fc10(x)  # fc10 -> probs (softmax in the loss)

    def param_groups(self):
        # params/cifar10-80sec.cfg: epsW=0.001 epsB=0.002 mom=0.9;
        # wc=0.004 on the convs, 0.03 on the fc layers.
        convs = [self.conv1, self.conv2, self.conv3]
        fcs = [self.fc64, self.fc10]
        return [
            {"params": [l.weight for l in convs], "lr": 0.001, "weight_decay": 0.004},
            {"params": [l.weight for l in fcs], "lr": 0.001, "weight_decay": 0.03},
            {"params": [l.bias for l in convs + fcs], "lr": 0.002, "weight_decay": 0.0},
        ]


class AlexNet2012(nn.Module):
    """layer-defs/alexnet-2012-1gpu.cfg (both towers on one device):
    224x224x3 -> conv1 55x55x96 -> rnorm1 -> pool1 27x27 -> conv2 27x27x256 -> rnorm2
    -> pool2 13x13 -> conv3 13x13x384 -> conv4 13x13x384 -> conv5 13x13x256
    -> pool5 6x6x256 (9216) -> fc6 4096 -> drop6 -> fc7 4096 -> drop7 -> fc8 1000."""

    image = (3, 224, 224)
    classes = 1000

    def __init__(self):
        super().__init__()
        # conv1a + conv1b: 2 x 48 filters 11x11, stride 4, padding 0, both read data.
        self.conv1 = init_layer(nn.Conv2d(3, 96, 11, stride=4, padding=0), 0.01)
        # rnorm1a / rnorm1b: cmrnorm size=5 scale=0.0001 pow=0.75 minDiv=2, per tower.
        self.rnorm1 = PerTower(2, lambda: nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0))
        # conv2a / conv2b: 128 filters 5x5 pad 2 each, own tower only; initB=1.
        self.conv2 = init_layer(nn.Conv2d(96, 256, 5, stride=1, padding=2, groups=2), 0.01, 1.0)
        self.rnorm2 = PerTower(2, lambda: nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0))
        # conv3a / conv3b: 192 filters 3x3 pad 1 each, reading both towers.
        self.conv3 = init_layer(nn.Conv2d(256, 384, 3, stride=1, padding=1), 0.03)
        # conv4a / conv4b: 192 filters 3x3 pad 1, own tower; initB=1.
        self.conv4 = init_layer(nn.Conv2d(384, 384, 3, stride=1, padding=1, groups=2), 0.03, 1.0)
        # conv5a / conv5b: 128 filters 3x3 pad 1, own tower; initB=1.
        self.conv5 = init_layer(nn.Conv2d(384, 256, 3, stride=1, padding=1, groups=2), 0.03, 1.0)
        # fc6a / fc6b: 2 x 2048 units reading both pool5 towers; initB=1.
        self.fc6 = init_layer(nn.Linear(2 * 6 * 6 * 128, 4096), 0.01, 1.0)
        # fc7a / fc7b: 2 x 2048 reading both drop6 towers; initB=1.
        self.fc7 = init_layer(nn.Linear(4096, 4096), 0.01, 1.0)
        # fc8: 1000 outputs, one weight matrix per tower; initB=0.
        self.fc8 = init_layer(nn.Linear(4096, 1000), 0.01)
        self.drop = nn.Dropout(0.5)  # drop6a/b, drop7a/b: hs keep=0.5 enable=true

    def forward(self, x):
        x = F.relu(self.conv1(x), inplace=True)  # 224 -> 55
        x = F.max_pool2d(self.rnorm1(x), 3, stride=2, ceil_mode=True)  # pool1 55 -> 27
        x = F.relu(self.conv2(x), inplace=True)
        x = F.max_pool2d(self.rnorm2(x), 3, stride=2, ceil_mode=True)  # pool2 27 -> 13
        x = F.relu(self.conv3(x), inplace=True)
        x = F.relu(self.conv4(x), inplace=True)
        x = F.relu(self.conv5(x), inplace=True)
        x = F.max_pool2d(x, 3, stride=2, ceil_mode=True)  # pool5 13 -> 6
        x = torch.flatten(x, 1)
        x = self.drop(F.relu(self.fc6(x), inplace=True))
        x = self.drop(F.relu(self.fc7(x), inplace=True))
        return self.fc8(x)

    def param_groups(self):
        # params/alexnet-2012-1gpu.cfg [DEFAULT]: eps=0.01 epsbias=0.02 mom=0.9
        # decay=0.0005 for every weight layer.
        layers = [self.conv1, self.conv2, self.conv3, self.conv4, self.conv5,
                  self.fc6, self.fc7, self.fc8]
        return [
            {"params": [l.weight for l in layers], "lr": 0.01, "weight_decay": 0.0005},
            {"params": [l.bias for l in layers], "lr": 0.02, "weight_decay": 0.0},
        ]


NETS = {"80sec": Cifar80Sec, "alexnet": AlexNet2012}


def blas_libraries():
    """The BLAS/LAPACK shared objects this process has mapped (Linux): Debian's torch
    calls whatever libblas.so.3 the alternatives system (or LD_LIBRARY_PATH) picks, and
    the fully-connected layers' speed depends on it."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "/" in line}
    except OSError:
        return "unknown"
    hits = sorted(p for p in paths if any(k in os.path.basename(p)
                                          for k in ("blas", "lapack", "mkl", "blis")))
    return ", ".join(os.path.realpath(p) for p in hits) or "none mapped"


def cpu_ticks():
    """(steal, busy, total) jiffies of the whole machine from /proc/stat, or None."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    v += [0] * (8 - len(v))
    # user nice system idle iowait irq softirq steal
    return v[7], v[0] + v[1] + v[2] + v[5] + v[6], sum(v)


def contention_report(ticks0, ticks1, own_cpu_s, wall_s):
    """Lines saying how much of the machine something else took while timing: the cpu
    steal share (the hypervisor) and the busy time of other processes (the whole
    machine's busy time less this process's own cpu time), both as a share of all
    cores. Either one large means the figure is low and should be measured again."""
    if not ticks0 or not ticks1 or ticks1[2] <= ticks0[2] or wall_s <= 0:
        return []
    total = ticks1[2] - ticks0[2]
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    ncpu = os.cpu_count() or 1
    steal = 100.0 * (ticks1[0] - ticks0[0]) / total
    other = 100.0 * ((ticks1[1] - ticks0[1]) / hz - own_cpu_s) / (wall_s * ncpu)
    return [f"cpu steal while timing: {steal:.1f}%",
            f"other processes' cpu while timing: {max(other, 0.0):.0f}% of {ncpu} cores"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--net", choices=sorted(NETS), default="80sec")
    ap.add_argument("--batches", type=int, default=20, help="timed training steps")
    ap.add_argument("--warmup", type=int, default=2, help="untimed training steps first")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--mini", type=int, default=128, help="minibatch size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda (cuDNN) on a GPU machine")
    a = ap.parse_args(argv)
    if a.batches < 1 or a.mini < 1 or a.threads < 1 or a.warmup < 0:
        ap.error("--batches, --mini and --threads must be >= 1, --warmup >= 0")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    net = NETS[a.net]().to(dev)
    net.train()
    opt = torch.optim.SGD(net.param_groups(), lr=0.0, momentum=0.9)

    x = torch.randn(a.mini, *net.image, device=dev)
    y = torch.randint(0, net.classes, (a.mini,), device=dev)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss.item()  # synchronises with the GPU

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"net {a.net}, minibatch {a.mini}, input {'x'.join(map(str, net.image))}",
          flush=True)
    for i in range(a.warmup):
        t0 = time.perf_counter()
        loss = step()
        print(f"warm-up {i + 1}/{a.warmup}: {time.perf_counter() - t0:.3f} s, "
              f"loss {loss:.4f}", flush=True)
    print(f"blas: {blas_libraries()}", flush=True)
    if hasattr(os, "getloadavg"):
        print("load average before timing: %.2f %.2f %.2f" % os.getloadavg(), flush=True)
    ticks0 = cpu_ticks()
    cpu0 = time.process_time()
    total, fastest = 0.0, float("inf")
    for i in range(a.batches):
        t0 = time.perf_counter()
        loss = step()
        dt = time.perf_counter() - t0
        total += dt
        fastest = min(fastest, dt)
        print(f"batch {i + 1}/{a.batches}: {dt:.3f} s, loss {loss:.4f}", flush=True)
    cpu1 = time.process_time()
    ticks1 = cpu_ticks()
    # With T threads on an idle machine this approaches T; much less means the cores were
    # shared with other work (or the threads sat waiting) and the figure is low.
    print(f"process cpu / wall while timing: {(cpu1 - cpu0) / total:.2f}")
    for line in contention_report(ticks0, ticks1, cpu1 - cpu0, total):
        print(line)
    ips = a.batches * a.mini / total
    print(f"fastest step: {a.mini / fastest:.1f} images/s")
    print(f"{a.batches} batches of {a.mini} in {total:.3f} s")
    print(f"bench: {ips:.1f} images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
