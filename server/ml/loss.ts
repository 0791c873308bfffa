// Per-image terms of the VAE objective. Every function expects to run inside
// tf.tidy (callers own the scope) and returns [batch]-shaped tensors.
import * as tf from '@tensorflow/tfjs';
import type { Likelihood } from '../domain/types.js';

const EPS = 1e-6;
/** sigma² never drops below this, so a near-perfect fit cannot blow up the NLL. */
export const MIN_SIGMA2 = 1e-4;

/** Analytic KL(N(mu, exp(logVar)) || N(0, I)) summed over latent dims. */
export function klPerImage(mu: tf.Tensor2D, logVar: tf.Tensor2D): tf.Tensor1D {
  return mu.square().add(logVar.exp()).sub(1).sub(logVar).sum(1).mul(0.5) as tf.Tensor1D;
}

/** Squared error summed over the pixels and channels of each image. */
export function sumSquaredError(x: tf.Tensor4D, xHat: tf.Tensor4D): tf.Tensor1D {
  return x.sub(xHat).square().sum([1, 2, 3]) as tf.Tensor1D;
}

/**
 * Reconstruction negative log-likelihood per image, in nats.
 * gaussian: N(x; x̂, sigma² I), with sigma² given (the model's calibrated value).
 * bernoulli: binary cross-entropy summed over pixels.
 */
export function reconNll(
  x: tf.Tensor4D,
  xHat: tf.Tensor4D,
  likelihood: Likelihood,
  sigma2: number | tf.Scalar,
): tf.Tensor1D {
  const d = x.shape[1]! * x.shape[2]! * x.shape[3]!;
  if (likelihood === 'bernoulli') {
    const p = xHat.clipByValue(EPS, 1 - EPS);
    return x.mul(p.log()).add(tf.scalar(1).sub(x).mul(tf.scalar(1).sub(p).log())).sum([1, 2, 3]).neg() as tf.Tensor1D;
  }
  const s2 = typeof sigma2 === 'number' ? tf.scalar(sigma2) : sigma2;
  return sumSquaredError(x, xHat)
    .div(s2.mul(2))
    .add(s2.mul(2 * Math.PI).log().mul(0.5 * d)) as tf.Tensor1D;
}

/**
 * Training objective: mean over the batch of reconNLL + beta·KL. For the
 * gaussian likelihood sigma² is either fixed, or the batch's own MSE (the
 * "calibrated decoder" of Rybkin et al., 2021) when fixedSigma2 is null.
 */
export function vaeLoss(
  x: tf.Tensor4D,
  xHat: tf.Tensor4D,
  mu: tf.Tensor2D,
  logVar: tf.Tensor2D,
  likelihood: Likelihood,
  beta: number,
  fixedSigma2: number | null = null,
): { total: tf.Scalar; recon: tf.Scalar; kl: tf.Scalar; sigma2: tf.Scalar } {
  const sigma2 = (fixedSigma2 === null ? tf.maximum(x.sub(xHat).square().mean(), MIN_SIGMA2) : tf.scalar(fixedSigma2)) as tf.Scalar;
  const recon = reconNll(x, xHat, likelihood, sigma2).mean() as tf.Scalar;
  const kl = klPerImage(mu, logVar).mean() as tf.Scalar;
  return { total: recon.add(kl.mul(beta)) as tf.Scalar, recon, kl, sigma2 };
}
