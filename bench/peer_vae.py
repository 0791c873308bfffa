#!/usr/bin/python3
"""PyTorch peer of latentwatch's VAE, for bench/speed.ts.

The same network as createVae in server/ml/vae.ts (strided 4x4 'same'
convolutions down to <= 8x8 with filters doubling per level capped at 8x,
dense mu and log sigma², dense back up, 4x4 stride-2 transposed convolutions,
sigmoid means), the same training step (reparameterised sample, gaussian
likelihood with sigma² = the batch's own MSE floored at 1e-4 as in
server/ml/loss.ts, beta = 1, Adam lr 1e-3, batch 64) and the same scoring
forward pass (x -> mu, log sigma², decoder(mu); KL, MSE and negative ELBO per
image). Measures images per second on random images, single precision, CPU.

    /usr/bin/python3 bench/peer_vae.py --sizes 28,64,128 --threads 1,2 --seconds 10

Prints one JSON document on stdout (progress on stderr).
"""
import argparse
import json
import math
import sys
import time

import torch
from torch import nn

MIN_SIGMA2 = 1e-4


def level_sizes(size):
    sizes = [size]
    while sizes[-1] % 2 == 0 and sizes[-1] > 8:
        sizes.append(sizes[-1] // 2)
    return sizes


def filters_at(level, base):
    return base * min(2 ** level, 8)


class Vae(nn.Module):
    """NCHW, PyTorch's native layout; the shapes and multiply-adds are ours.

    A 4x4 stride-2 convolution with padding 1 is TensorFlow's 'same' on even
    sides (pad 1 before, 1 after), and its transpose with padding 1 doubles
    the side, as conv2dTranspose 'same' does.
    """

    def __init__(self, size, channels=1, latent=32, base=32):
        super().__init__()
        sizes = level_sizes(size)
        levels = len(sizes) - 1
        self.top = sizes[levels]
        self.top_filters = filters_at(levels - 1, base)
        enc = []
        cin = channels
        for i in range(levels):
            cout = filters_at(i, base)
            enc += [nn.Conv2d(cin, cout, 4, 2, 1), nn.ReLU()]
            cin = cout
        self.enc = nn.Sequential(*enc)
        flat = self.top * self.top * self.top_filters
        self.mu = nn.Linear(flat, latent)
        self.log_var = nn.Linear(flat, latent)
        self.dec_dense = nn.Linear(latent, flat)
        dec = []
        cin = self.top_filters
        for i in range(levels - 2, -1, -1):
            cout = filters_at(i, base)
            dec += [nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.ReLU()]
            cin = cout
        dec += [nn.ConvTranspose2d(cin, channels, 4, 2, 1), nn.Sigmoid()]
        self.dec = nn.Sequential(*dec)
        # Same initialisers as createVae: He normal for the ReLU layers,
        # Glorot uniform for mu and the output, zeros for log sigma².
        for m in list(self.enc) + [self.dec_dense] + list(self.dec)[:-2]:
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity='relu')
                nn.init.zeros_(m.bias)
        for m in (self.mu, self.dec[-2]):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
        nn.init.zeros_(self.log_var.weight)
        nn.init.zeros_(self.log_var.bias)

    def encode(self, x):
        h = self.enc(x).flatten(1)
        return self.mu(h), self.log_var(h)

    def decode(self, z):
        g = torch.relu(self.dec_dense(z)).view(-1, self.top_filters, self.top, self.top)
        return self.dec(g)


def kl_per_image(mu, log_var):
    return 0.5 * (mu.square() + log_var.exp() - 1 - log_var).sum(1)


def recon_nll(x, x_hat, sigma2):
    d = x[0].numel()
    return (x - x_hat).square().sum((1, 2, 3)) / (2 * sigma2) + 0.5 * d * torch.log(2 * math.pi * sigma2)


def train_step(vae, opt, x):
    mu, log_var = vae.encode(x)
    z = mu + torch.randn_like(mu) * torch.exp(0.5 * log_var)
    x_hat = vae.decode(z)
    sigma2 = torch.clamp((x - x_hat).square().mean(), min=MIN_SIGMA2)  # not detached, as in loss.ts
    loss = (recon_nll(x, x_hat, sigma2) + kl_per_image(mu, log_var)).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


@torch.no_grad()
def score(vae, x, sigma2=0.01):
    mu, log_var = vae.encode(x)
    x_hat = vae.decode(mu)
    kl = kl_per_image(mu, log_var)
    recon = (x - x_hat).square().mean((1, 2, 3))
    elbo = recon_nll(x, x_hat, torch.tensor(sigma2)) + kl
    return torch.stack([kl, recon, elbo])


def rate(per_call, fn, seconds, warm_up=1):
    for _ in range(warm_up):
        fn()
    calls = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return calls * per_call / (time.perf_counter() - start), calls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--sizes', default='28,64')
    ap.add_argument('--threads', default='1,2')
    ap.add_argument('--seconds', type=float, default=10)
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--latent', type=int, default=32)
    ap.add_argument('--filters', type=int, default=32)
    a = ap.parse_args()
    torch.manual_seed(1)
    results = []
    for size in [int(s) for s in a.sizes.split(',')]:
        for threads in [int(t) for t in a.threads.split(',')]:
            torch.set_num_threads(threads)
            vae = Vae(size, 1, a.latent, a.filters)
            params = sum(p.numel() for p in vae.parameters())
            opt = torch.optim.Adam(vae.parameters(), lr=1e-3)
            x = torch.rand(a.batch, 1, size, size)
            vae.train()
            train, train_calls = rate(a.batch, lambda: train_step(vae, opt, x), a.seconds)
            vae.eval()
            score64, score_calls = rate(a.batch, lambda: score(vae, x), a.seconds)
            r = {
                'size': size, 'threads': threads, 'parameters': params,
                'trainImagesPerSecond': train, 'trainCalls': train_calls,
                'scoreImagesPerSecondBatch64': score64, 'scoreCalls': score_calls,
            }
            print(f'pytorch {size}x{size} threads {threads}: {params} parameters, train {train:.1f} img/s, '
                  f'score b64 {score64:.1f} img/s', file=sys.stderr)
            results.append(r)
    json.dump({
        'peer': 'pytorch', 'torch': torch.__version__, 'python': sys.version.split()[0],
        'mkldnn': torch.backends.mkldnn.is_available(), 'batch': a.batch,
        'latent': a.latent, 'baseFilters': a.filters, 'secondsPerMeasurement': a.seconds,
        'results': results,
    }, sys.stdout)
    print()


if __name__ == '__main__':
    main()
