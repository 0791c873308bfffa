// Convolution-gradient kernels for the wasm backend, built on its own fast
// forward Conv2D (XNNPACK). tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter
// at all, and its Conv2DBackpropInput is a scalar loop. Both are registered as
// kernels, not gradients, because fused convolutions call the kernels directly.
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
 * dx = stride-1 "valid" convolution of dy with zeros inserted between its
 * rows/columns (and padded by kh-1-pt), using the spatially flipped filter
 * with its in/out channels swapped.
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

let registered = false;
let stockBackpropInput: tf.KernelConfig | undefined;

function install(kernelName: string, kernelFunc: tf.KernelFunc, setupFunc?: tf.KernelSetupFunc): void {
  if (tf.getKernel(kernelName, 'wasm') != null) tf.unregisterKernel(kernelName, 'wasm');
  tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc, setupFunc });
}

/** Installs the two kernels for the 'wasm' backend (idempotent). */
export function registerWasmConvKernels(): void {
  if (registered) return;
  stockBackpropInput = tf.getKernel('Conv2DBackpropInput', 'wasm');
  install('Conv2DBackpropFilter', conv2DBackpropFilter as tf.KernelFunc);
  install('Conv2DBackpropInput', conv2DBackpropInput as tf.KernelFunc);
  registered = true;
}

/** Benchmarks only: switch between wasm's stock Conv2DBackpropInput and ours. */
export function useStockBackpropInput(stock: boolean): void {
  if (!stockBackpropInput) throw new Error('registerWasmConvKernels() has not run');
  if (stock) {
    install('Conv2DBackpropInput', stockBackpropInput.kernelFunc, stockBackpropInput.setupFunc);
    // Ours replaced it before the backend started, so its setup (binding the wasm export) never ran.
    stockBackpropInput.setupFunc?.(tf.backend());
  } else {
    install('Conv2DBackpropInput', conv2DBackpropInput as tf.KernelFunc);
  }
}
