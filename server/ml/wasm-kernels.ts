// Convolution-gradient kernels for the wasm backend, built on its own fast
// forward Conv2D (XNNPACK). tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter
// at all, and its Conv2DBackpropInput is a scalar loop. Both are registered as
// kernels, not gradients, because fused convolutions call the kernels directly.
// Conv2DBackpropInput (the decoder's transposed convolutions, and every
// encoder convolution's input gradient) uses the sub-pixel decomposition, so
// a stride-2 layer does a quarter of the multiply-adds of zero insertion.
// BatchMatMul is wrapped so that transposed operands (the dense layers'
// gradients) reach XNNPACK instead of wasm's scalar loop.
//
// The index shuffling (transposes, zero insertion, padding) happens in plain
// typed-array loops: wasm's StridedSlice/Transpose/Pad are far slower here.
import * as tf from '@tensorflow/tfjs';

type TensorInfo = tf.TensorInfo;

/** The few members of BackendWasm these kernels use. */
interface WasmBackend {
  makeOutput(shape: number[], dtype: tf.DataType): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): Float32Array;
  disposeData(dataId: object): boolean;
}

type Conv2DInfo = ReturnType<typeof tf.backend_util.computeConv2DInfo>;

function convInfoFor(
  xShape: number[],
  filterShape: number[],
  attrs: Record<string, unknown>,
): Conv2DInfo {
  const dataFormat = tf.backend_util.convertConv2DDataFormat(
    (attrs.dataFormat as 'NHWC' | 'NCHW' | undefined) ?? 'NHWC',
  );
  if (dataFormat !== 'channelsLast') {
    throw new Error('latentwatch wasm convolution kernels support NHWC only');
  }
  const info = tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides as [number, number] | number,
    1,
    attrs.pad as 'same' | 'valid',
    attrs.dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined,
    false,
    dataFormat,
  );
  return info;
}

/** Stride-1 "valid" forward convolution with the backend's own Conv2D kernel. */
function forwardConv(
  backend: WasmBackend,
  x: TensorInfo,
  filter: TensorInfo,
  dilation: [number, number],
): TensorInfo {
  const kernel = tf.getKernel('Conv2D', 'wasm');
  if (kernel == null) throw new Error("wasm backend has no 'Conv2D' kernel");
  return kernel.kernelFunc({
    inputs: { x, filter },
    backend: backend as unknown as tf.KernelBackend,
    attrs: { strides: [1, 1], pad: 'valid', dilations: dilation, dataFormat: 'NHWC' },
  }) as TensorInfo;
}

/**
 * dW[i,j,ci,co] = sum over n,ho,wo of x[n, ho*s+i-pt, wo*s+j-pl, ci] * dy[n,ho,wo,co].
 * That is a forward convolution of x' = x as [Cin, H', W', N] (padded) with
 * dy' = dy as [Ho, Wo, N, Cout], the original stride becoming a dilation.
 */
function conv2DBackpropFilter(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): TensorInfo {
  const backend = args.backend as WasmBackend;
  const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
  const attrs = (args.attrs ?? {}) as Record<string, unknown>;
  const filterShape = attrs.filterShape as [number, number, number, number];
  const info = convInfoFor(x.shape, filterShape, attrs);
  const [n, h, w, cin] = x.shape;
  const { strideHeight: sh, strideWidth: sw, outHeight: ho, outWidth: wo } = info;
  const [kh, kw, , cout] = filterShape;
  const pt = info.padInfo.top;
  const pl = info.padInfo.left;
  // Padded height/width so that the valid dilated conv yields exactly kh x kw.
  const hp = kh + (ho - 1) * sh;
  const wp = kw + (wo - 1) * sw;

  const xT = backend.makeOutput([cin, hp, wp, n], 'float32');
  const dyT = backend.makeOutput([ho, wo, n, cout], 'float32');
  {
    const src = backend.typedArrayFromHeap(x);
    const dst = backend.typedArrayFromHeap(xT);
    dst.fill(0);
    for (let b = 0; b < n; b++) {
      for (let r = 0; r < hp; r++) {
        const hr = r - pt;
        if (hr < 0 || hr >= h) continue;
        for (let c = 0; c < wp; c++) {
          const wc = c - pl;
          if (wc < 0 || wc >= w) continue;
          const s = ((b * h + hr) * w + wc) * cin;
          let d = (r * wp + c) * n + b;
          const step = hp * wp * n;
          for (let ci = 0; ci < cin; ci++, d += step) dst[d] = src[s + ci];
        }
      }
    }
    const dySrc = backend.typedArrayFromHeap(dy);
    const dyDst = backend.typedArrayFromHeap(dyT);
    for (let b = 0; b < n; b++) {
      for (let r = 0; r < ho; r++) {
        for (let c = 0; c < wo; c++) {
          const s = ((b * ho + r) * wo + c) * cout;
          const d = ((r * wo + c) * n + b) * cout;
          dyDst.set(dySrc.subarray(s, s + cout), d);
        }
      }
    }
  }
  const grad = forwardConv(backend, xT, dyT, [sh, sw]); // [cin, kh, kw, cout]
  backend.disposeData(xT.dataId);
  backend.disposeData(dyT.dataId);

  const out = backend.makeOutput(filterShape, 'float32');
  const g = backend.typedArrayFromHeap(grad);
  const o = backend.typedArrayFromHeap(out);
  for (let ci = 0; ci < cin; ci++) {
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        const s = ((ci * kh + i) * kw + j) * cout;
        const d = ((i * kw + j) * cin + ci) * cout;
        o.set(g.subarray(s, s + cout), d);
      }
    }
  }
  backend.disposeData(grad.dataId);
  return out;
}

/**
 * dW as matrix products: dW[(i,j,ci), co] = Pᵀ · dy, with Pᵀ the transposed
 * im2col of x ([kh*kw*cin, n*ho*wo], built in a typed-array loop) and dy seen
 * as [n*ho*wo, cout]; the product lands in the filter's own [kh, kw, cin, cout]
 * order. Summed over chunks of images so each slice of dy stays in cache.
 * Faster than the dilated convolution only when kh*kw*cin is small (the first
 * layer, cin = 1 or 3: 94 -> 52 ms at 64 px, batch 64); at cin = 32 or 64 the
 * gather costs more than it saves (245 -> 314, 481 -> 574 ms), so
 * conv2DBackpropFilterAuto picks per call.
 */
function conv2DBackpropFilterGemm(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): TensorInfo {
  const backend = args.backend as WasmBackend;
  const kb = backend as unknown as tf.KernelBackend;
  const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
  const attrs = (args.attrs ?? {}) as Record<string, unknown>;
  const filterShape = attrs.filterShape as [number, number, number, number];
  const info = convInfoFor(x.shape, filterShape, attrs);
  const [n, h, w, cin] = x.shape;
  const { strideHeight: sh, strideWidth: sw, outHeight: ho, outWidth: wo } = info;
  const [kh, kw, , cout] = filterShape;
  const pt = info.padInfo.top;
  const pl = info.padInfo.left;
  const rows = kh * kw * cin;
  const perImage = ho * wo;
  // Images per product, so that the packed slice of dy (k x cout floats) stays
  // in cache while every row block of Pᵀ streams over it.
  const chunk = Math.max(1, Math.min(n, Math.floor(gemmChunkFloats / (perImage * cout))));

  const out = backend.makeOutput(filterShape, 'float32');
  backend.typedArrayFromHeap(out).fill(0);
  for (let b0 = 0; b0 < n; b0 += chunk) {
    const nb = Math.min(chunk, n - b0);
    const cols = nb * perImage;
    const pT = backend.makeOutput([rows, cols], 'float32');
    const dyChunk = backend.makeOutput([cols, cout], 'float32');
    {
      // Re-read the views: makeOutput may grow the wasm heap and detach them.
      const xs = backend.typedArrayFromHeap(x);
      const dst = backend.typedArrayFromHeap(pT);
      for (let i = 0; i < kh; i++) {
        for (let j = 0; j < kw; j++) {
          for (let ci = 0; ci < cin; ci++) {
            let d = ((i * kw + j) * cin + ci) * cols;
            for (let b = b0; b < b0 + nb; b++) {
              for (let r = 0; r < ho; r++) {
                const hr = r * sh + i - pt;
                if (hr < 0 || hr >= h) {
                  dst.fill(0, d, d + wo);
                  d += wo;
                  continue;
                }
                const rowBase = (b * h + hr) * w;
                for (let c = 0; c < wo; c++, d++) {
                  const wc = c * sw + j - pl;
                  dst[d] = wc >= 0 && wc < w ? xs[(rowBase + wc) * cin + ci] : 0;
                }
              }
            }
          }
        }
      }
      backend.typedArrayFromHeap(dyChunk).set(backend.typedArrayFromHeap(dy).subarray(b0 * perImage * cout, (b0 + nb) * perImage * cout));
    }
    const product = stockBatchMatMul!.kernelFunc({
      inputs: { a: pT, b: dyChunk }, backend: kb, attrs: { transposeA: false, transposeB: false },
    }) as TensorInfo; // [rows, cout], in the filter's [kh, kw, cin, cout] order
    backend.disposeData(pT.dataId);
    backend.disposeData(dyChunk.dataId);
    const p = backend.typedArrayFromHeap(product);
    const a = backend.typedArrayFromHeap(out);
    for (let k = 0; k < p.length; k++) a[k] += p[k];
    backend.disposeData(product.dataId);
  }
  return out;
}

/** Floats of dy per matrix product in conv2DBackpropFilterGemm. */
const gemmChunkFloats = 1 << 16;

/** The largest kh*kw*cin for which conv2DBackpropFilterGemm beats the dilated convolution. */
const GEMM_MAX_ROWS = 64;

function conv2DBackpropFilterAuto(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): TensorInfo {
  const { x } = args.inputs as { x: TensorInfo };
  const [kh, kw] = (args.attrs as { filterShape: number[] }).filterShape;
  const small = kh * kw * x.shape[3] <= GEMM_MAX_ROWS && stockBatchMatMul != null;
  return small ? conv2DBackpropFilterGemm(args) : conv2DBackpropFilter(args);
}

/**
 * The first version, kept for A/B measurement (useBackpropInput('zero-insertion')):
 * dx = stride-1 "valid" convolution of dy with zeros inserted between its
 * rows/columns (and padded by kh-1-pt), using the spatially flipped filter
 * with its in/out channels swapped. At stride 2, three quarters of its
 * multiply-adds hit inserted zeros.
 */
function conv2DBackpropInputZeroInsertion(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): TensorInfo {
  const backend = args.backend as WasmBackend;
  const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
  const attrs = (args.attrs ?? {}) as Record<string, unknown>;
  const inputShape = attrs.inputShape as [number, number, number, number];
  const info = convInfoFor(inputShape, filter.shape, attrs);
  const [n, h, w] = inputShape;
  const [kh, kw, cin, cout] = filter.shape;
  const { strideHeight: sh, strideWidth: sw } = info;
  const [, ho, wo] = dy.shape;
  const top = kh - 1 - info.padInfo.top;
  const left = kw - 1 - info.padInfo.left;
  const hp = h + kh - 1;
  const wp = w + kw - 1;

  const up = backend.makeOutput([n, hp, wp, cout], 'float32');
  const flipped = backend.makeOutput([kh, kw, cout, cin], 'float32');
  {
    const src = backend.typedArrayFromHeap(dy);
    const dst = backend.typedArrayFromHeap(up);
    dst.fill(0);
    for (let b = 0; b < n; b++) {
      for (let r = 0; r < ho; r++) {
        const pr = top + r * sh;
        if (pr < 0 || pr >= hp) continue;
        for (let c = 0; c < wo; c++) {
          const pc = left + c * sw;
          if (pc < 0 || pc >= wp) continue;
          const s = ((b * ho + r) * wo + c) * cout;
          dst.set(src.subarray(s, s + cout), ((b * hp + pr) * wp + pc) * cout);
        }
      }
    }
    const f = backend.typedArrayFromHeap(filter);
    const fo = backend.typedArrayFromHeap(flipped);
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        const fi = kh - 1 - i;
        const fj = kw - 1 - j;
        for (let ci = 0; ci < cin; ci++) {
          for (let co = 0; co < cout; co++) {
            fo[((i * kw + j) * cout + co) * cin + ci] = f[((fi * kw + fj) * cin + ci) * cout + co];
          }
        }
      }
    }
  }
  const dx = forwardConv(backend, up, flipped, [1, 1]);
  backend.disposeData(up.dataId);
  backend.disposeData(flipped.dataId);
  return dx;
}

/**
 * One spatial axis of the sub-pixel (phase) decomposition of a transposed
 * convolution with stride s, kernel k and leading padding p. Output position
 * y = s*Y + phase only receives kernel taps i = i0 + s*a (a = 0..taps-1),
 * i0 = (phase + p) mod s, each reading dy at Y + c - a, c = (phase + p - i0) / s.
 * So each phase is a stride-1 correlation of dy with its flipped sub-kernel:
 * tap a sits at window position taps-1-a over dy rows starting at Y + lo,
 * lo = c - taps + 1.
 */
interface AxisPlan {
  /** Per phase: first tap, tap count, window start lo, output count, shift into the shared conv output. */
  phases: { i0: number; taps: number; lo: number; count: number; shift: number }[];
  /** Window size of the shared convolution (the largest tap count). */
  window: number;
  /** dy row read at shared-conv output 0, window position 0 (<= 0: leading zero padding). */
  base: number;
  /** Rows of the shared convolution's output. */
  out: number;
}

function planAxis(size: number, k: number, s: number, p: number): AxisPlan {
  const raw = [];
  for (let phase = 0; phase < s; phase++) {
    const i0 = (((phase + p) % s) + s) % s;
    const taps = i0 < k ? Math.ceil((k - i0) / s) : 0;
    const c = (phase + p - i0) / s;
    const count = phase < size ? Math.ceil((size - phase) / s) : 0;
    raw.push({ i0, taps, lo: c - taps + 1, count });
  }
  const live = raw.filter((r) => r.taps > 0 && r.count > 0);
  const base = live.length > 0 ? Math.min(...live.map((r) => r.lo)) : 0;
  const window = Math.max(1, ...raw.map((r) => r.taps));
  const phases = raw.map((r) => ({ ...r, shift: r.taps > 0 && r.count > 0 ? r.lo - base : 0 }));
  const out = Math.max(1, ...phases.map((r) => (r.taps > 0 && r.count > 0 ? r.count + r.shift : 0)));
  return { phases, window, base, out };
}

/**
 * dx by the sub-pixel decomposition: the sh*sw output phases of a strided
 * transposed convolution are stride-1 convolutions of dy with sub-kernels of
 * the flipped filter. They run as ONE forward Conv2D whose output channels are
 * the phases side by side (sh*sw*cin), over dy padded by the few rows the
 * phases' windows reach past its edges; then depth-to-space interleaves the
 * phases into dx. No multiply-add touches an inserted zero: for the 4x4,
 * stride-2 'same' layers the only extra work is one row and column of the
 * shared output grid (ho+1 by wo+1). Works for any stride, kernel and padding
 * (stride 1 is the plain dense case).
 */
function conv2DBackpropInput(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): TensorInfo {
  const backend = args.backend as WasmBackend;
  const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
  const attrs = (args.attrs ?? {}) as Record<string, unknown>;
  const inputShape = attrs.inputShape as [number, number, number, number];
  const info = convInfoFor(inputShape, filter.shape, attrs);
  const [n, h, w] = inputShape;
  const [kh, kw, cin, cout] = filter.shape;
  const { strideHeight: sh, strideWidth: sw } = info;
  const [, ho, wo] = dy.shape;
  const rows = planAxis(h, kh, sh, info.padInfo.top);
  const cols = planAxis(w, kw, sw, info.padInfo.left);
  const phases = sh * sw;
  const pc = phases * cin;
  const hp = rows.out + rows.window - 1;
  const wp = cols.out + cols.window - 1;

  const padded = backend.makeOutput([n, hp, wp, cout], 'float32');
  const subFilters = backend.makeOutput([rows.window, cols.window, cout, pc], 'float32');
  {
    const src = backend.typedArrayFromHeap(dy);
    const dst = backend.typedArrayFromHeap(padded);
    const r0 = Math.max(0, -rows.base);
    const r1 = Math.min(hp, ho - rows.base);
    const c0 = Math.max(0, -cols.base);
    const c1 = Math.min(wp, wo - cols.base);
    if (r0 === 0 && c0 === 0 && r1 === hp && c1 === wp && rows.base === 0 && cols.base === 0 && hp === ho && wp === wo) {
      dst.set(src);
    } else {
      dst.fill(0);
      const span = Math.max(0, c1 - c0) * cout;
      for (let b = 0; b < n; b++) {
        for (let r = r0; r < r1; r++) {
          const s = ((b * ho + r + rows.base) * wo + c0 + cols.base) * cout;
          dst.set(src.subarray(s, s + span), ((b * hp + r) * wp + c0) * cout);
        }
      }
    }
    const f = backend.typedArrayFromHeap(filter);
    const fo = backend.typedArrayFromHeap(subFilters);
    fo.fill(0);
    for (let py = 0; py < sh; py++) {
      const rp = rows.phases[py];
      for (let px = 0; px < sw; px++) {
        const cp = cols.phases[px];
        const phase = py * sw + px;
        for (let a = 0; a < rp.taps; a++) {
          const i = rp.i0 + sh * a;
          const tr = rp.taps - 1 - a;
          for (let e = 0; e < cp.taps; e++) {
            const j = cp.i0 + sw * e;
            const tc = cp.taps - 1 - e;
            for (let ci = 0; ci < cin; ci++) {
              const fs = ((i * kw + j) * cin + ci) * cout;
              let d = ((tr * cols.window + tc) * cout) * pc + phase * cin + ci;
              for (let co = 0; co < cout; co++, d += pc) fo[d] = f[fs + co];
            }
          }
        }
      }
    }
  }
  const conv = forwardConv(backend, padded, subFilters, [1, 1]); // [n, rows.out, cols.out, phases*cin]
  backend.disposeData(padded.dataId);
  backend.disposeData(subFilters.dataId);

  // Depth-to-space: dx[b, py + sh*Y, px + sw*X, :] = conv[b, Y + shift_py, X + shift_px, phase*cin .. +cin].
  const dx = backend.makeOutput(inputShape, 'float32');
  const g = backend.typedArrayFromHeap(conv);
  const o = backend.typedArrayFromHeap(dx);
  for (let py = 0; py < sh; py++) {
    const rp = rows.phases[py];
    for (let px = 0; px < sw; px++) {
      const cp = cols.phases[px];
      const phase = py * sw + px;
      if (rp.taps === 0 || cp.taps === 0) {
        // No kernel tap reaches this phase: its outputs are zero.
        for (let b = 0; b < n; b++) {
          for (let Y = 0; Y < rp.count; Y++) {
            for (let X = 0; X < cp.count; X++) {
              o.fill(0, ((b * h + py + sh * Y) * w + px + sw * X) * cin, ((b * h + py + sh * Y) * w + px + sw * X + 1) * cin);
            }
          }
        }
        continue;
      }
      for (let b = 0; b < n; b++) {
        for (let Y = 0; Y < rp.count; Y++) {
          let s = ((b * rows.out + Y + rp.shift) * cols.out + cp.shift) * pc + phase * cin;
          let d = ((b * h + py + sh * Y) * w + px) * cin;
          const dStep = sw * cin;
          if (cin >= 16) {
            for (let X = 0; X < cp.count; X++, s += pc, d += dStep) o.set(g.subarray(s, s + cin), d);
          } else {
            for (let X = 0; X < cp.count; X++, s += pc, d += dStep) {
              for (let ci = 0; ci < cin; ci++) o[d + ci] = g[s + ci];
            }
          }
        }
      }
    }
  }
  backend.disposeData(conv.dataId);
  return dx;
}

/**
 * wasm's BatchMatMul is fast (XNNPACK) only without transposes; with
 * transposeA or transposeB it runs a scalar loop, 10-15x slower on the dense
 * layers' gradients (dW = xᵀ·dy, dx = dy·Wᵀ). So this transposes the operand in
 * a typed-array loop (cheap next to the product) and calls the stock kernel
 * untransposed.
 */
function transposedCopy(backend: WasmBackend, t: TensorInfo): TensorInfo {
  const rank = t.shape.length;
  const rows = t.shape[rank - 2];
  const cols = t.shape[rank - 1];
  const batch = t.shape.slice(0, -2).reduce((a, b) => a * b, 1);
  const out = backend.makeOutput([...t.shape.slice(0, -2), cols, rows], 'float32');
  const src = backend.typedArrayFromHeap(t);
  const dst = backend.typedArrayFromHeap(out);
  const m = rows * cols;
  // Blocked, so that both sides stay in cache for large matrices.
  const B = 32;
  for (let k = 0; k < batch; k++) {
    const off = k * m;
    for (let r0 = 0; r0 < rows; r0 += B) {
      const r1 = Math.min(rows, r0 + B);
      for (let c0 = 0; c0 < cols; c0 += B) {
        const c1 = Math.min(cols, c0 + B);
        for (let r = r0; r < r1; r++) {
          let si = off + r * cols + c0;
          let di = off + c0 * rows + r;
          for (let c = c0; c < c1; c++, si++, di += rows) dst[di] = src[si];
        }
      }
    }
  }
  return out;
}

let stockBatchMatMul: tf.KernelConfig | undefined;

function batchMatMul(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): TensorInfo {
  const stock = stockBatchMatMul!.kernelFunc;
  const attrs = (args.attrs ?? {}) as { transposeA?: boolean; transposeB?: boolean };
  const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
  if ((!attrs.transposeA && !attrs.transposeB) || a.dtype !== 'float32' || b.dtype !== 'float32') {
    return stock(args as Parameters<tf.KernelFunc>[0]) as TensorInfo;
  }
  const backend = args.backend as WasmBackend;
  const a2 = attrs.transposeA ? transposedCopy(backend, a) : a;
  const b2 = attrs.transposeB ? transposedCopy(backend, b) : b;
  try {
    return stock({
      inputs: { a: a2, b: b2 },
      backend: args.backend as tf.KernelBackend,
      attrs: { ...attrs, transposeA: false, transposeB: false },
    }) as TensorInfo;
  } finally {
    if (a2 !== a) backend.disposeData(a2.dataId);
    if (b2 !== b) backend.disposeData(b2.dataId);
  }
}

let registered = false;
let stockBackpropInput: tf.KernelConfig | undefined;

function install(kernelName: string, kernelFunc: tf.KernelFunc, setupFunc?: tf.KernelSetupFunc): void {
  if (tf.getKernel(kernelName, 'wasm') != null) tf.unregisterKernel(kernelName, 'wasm');
  tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc, setupFunc });
}

/** Installs the kernels for the 'wasm' backend (idempotent). */
export function registerWasmConvKernels(): void {
  if (registered) return;
  stockBackpropInput = tf.getKernel('Conv2DBackpropInput', 'wasm');
  stockBatchMatMul = tf.getKernel('BatchMatMul', 'wasm');
  install('Conv2DBackpropFilter', conv2DBackpropFilterAuto as tf.KernelFunc);
  install('Conv2DBackpropInput', conv2DBackpropInput as tf.KernelFunc);
  if (stockBatchMatMul) {
    // Keeps the stock setup: it binds the wasm export that the wrapper calls.
    install('BatchMatMul', batchMatMul as tf.KernelFunc, stockBatchMatMul.setupFunc);
  }
  registered = true;
}

export type BackpropInputVariant = 'sub-pixel' | 'zero-insertion' | 'stock';

/**
 * Benchmarks and tests only: which Conv2DBackpropInput runs. 'sub-pixel' is
 * the default; 'zero-insertion' the previous version of ours; 'stock' wasm's own.
 */
export function useBackpropInput(variant: BackpropInputVariant): void {
  if (!stockBackpropInput) throw new Error('registerWasmConvKernels() has not run');
  if (variant === 'stock') {
    install('Conv2DBackpropInput', stockBackpropInput.kernelFunc, stockBackpropInput.setupFunc);
    // Ours replaced it before the backend started, so its setup (binding the wasm export) never ran.
    stockBackpropInput.setupFunc?.(tf.backend());
  } else {
    install('Conv2DBackpropInput', (variant === 'sub-pixel' ? conv2DBackpropInput : conv2DBackpropInputZeroInsertion) as tf.KernelFunc);
  }
}

/** Benchmarks only: switch between wasm's stock Conv2DBackpropInput and ours (the sub-pixel one). */
export function useStockBackpropInput(stock: boolean): void {
  useBackpropInput(stock ? 'stock' : 'sub-pixel');
}

export type BackpropFilterVariant = 'auto' | 'gemm' | 'dilated-conv';

/**
 * Benchmarks and tests only: which Conv2DBackpropFilter runs. 'auto' (the
 * default) is the matrix product for small kh*kw*cin, else the dilated convolution.
 */
export function useBackpropFilter(variant: BackpropFilterVariant): void {
  const kernel = { auto: conv2DBackpropFilterAuto, gemm: conv2DBackpropFilterGemm, 'dilated-conv': conv2DBackpropFilter }[variant];
  install('Conv2DBackpropFilter', kernel as tf.KernelFunc);
}

/** Benchmarks and tests only: wasm's stock BatchMatMul (scalar loop when transposed) or the wrapper. */
export function useStockBatchMatMul(stock: boolean): void {
  if (!stockBatchMatMul) throw new Error('registerWasmConvKernels() has not run');
  install('BatchMatMul', (stock ? stockBatchMatMul.kernelFunc : batchMatMul) as tf.KernelFunc, stockBatchMatMul.setupFunc);
}
