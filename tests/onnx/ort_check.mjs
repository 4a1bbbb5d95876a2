// Runs an exported digitnet ONNX model in onnxruntime (onnxruntime-node, the CPU runtime) on a whole
// test set read straight from the data files, and compares every row with digitnet's own
// probabilities (the JSON of `digitnet predict --data ... --top 10 --json`).
//   node tests/onnx/ort_check.mjs MODEL.onnx optdigits|mnist DATA_FILE DIGITNET.json [MIN_SAME MAX_DIFF MAX_OVER]
// Prints one JSON line {rows, same_class, max_abs_diff, rows_over_1e-6, accuracy} and exits 1 when
// fewer than MIN_SAME of the rows (default 0.999) get the same class, a probability differs by more
// than MAX_DIFF (default 1e-4), or more than MAX_OVER of the rows (default 1: any) have a probability
// that differs by more than 1e-6.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import ort from 'onnxruntime-node';

const [modelPath, kind, dataPath, digitnetJson, minSameArg, maxDiffArg, maxOverArg] = process.argv.slice(2);
const minSame = minSameArg ? Number(minSameArg) : 0.999, maxAllowed = maxDiffArg ? Number(maxDiffArg) : 1e-4;
const maxOver = maxOverArg ? Number(maxOverArg) : 1;

// (pixels as float32 raw values, labels, h, w)
function loadData() {
  if (kind === 'optdigits') { // UCI optdigits.tes: 64 values 0..16 then the class, one row a line
    const rows = readFileSync(dataPath, 'utf8').split('\n').filter((l) => l.trim());
    const pixels = new Float32Array(rows.length * 64);
    const labels = new Uint8Array(rows.length);
    rows.forEach((line, i) => {
      const v = line.split(',').map(Number);
      if (v.length !== 65) throw new Error(`${dataPath}:${i + 1}: ${v.length} values`);
      for (let k = 0; k < 64; k++) pixels[i * 64 + k] = v[k];
      labels[i] = v[64];
    });
    return { pixels, labels, n: rows.length, h: 8, w: 8 };
  }
  // MNIST IDX images (gzip) and the labels file beside it
  const images = gunzipSync(readFileSync(dataPath));
  const labelBytes = gunzipSync(readFileSync(dataPath.replace('images-idx3', 'labels-idx1')));
  if (images.readUInt32BE(0) !== 2051 || labelBytes.readUInt32BE(0) !== 2049) throw new Error('bad IDX magic');
  const n = images.readUInt32BE(4), h = images.readUInt32BE(8), w = images.readUInt32BE(12);
  const pixels = Float32Array.from(images.subarray(16, 16 + n * h * w));
  return { pixels, labels: labelBytes.subarray(8, 8 + n), n, h, w };
}

const argmax = (a, off) => {
  let best = 0;
  for (let c = 1; c < 10; c++) if (a[off + c] > a[off + best]) best = c;
  return best;
};

const data = loadData();
const expected = JSON.parse(readFileSync(digitnetJson, 'utf8'));
if (expected.length !== data.n) throw new Error(`digitnet predicted ${expected.length} rows, the data has ${data.n}`);
const session = await ort.InferenceSession.create(modelPath, { intraOpNumThreads: 1, interOpNumThreads: 1 });
if (session.inputNames[0] !== 'input' || session.outputNames[0] !== 'probabilities')
  throw new Error(`names: ${session.inputNames} -> ${session.outputNames}`);

const batch = 500, px = data.h * data.w;
let same = 0, correct = 0, maxDiff = 0, rowsOver = 0;
for (let start = 0; start < data.n; start += batch) {
  const rows = Math.min(batch, data.n - start);
  const input = new ort.Tensor('float32', data.pixels.slice(start * px, (start + rows) * px), [rows, data.h, data.w, 1]);
  const { probabilities } = await session.run({ input });
  if (probabilities.dims[0] !== rows || probabilities.dims[1] !== 10) throw new Error(`output dims ${probabilities.dims}`);
  const p = probabilities.data;
  for (let r = 0; r < rows; r++) {
    const e = expected[start + r];
    if (e.index !== start + r) throw new Error(`row ${start + r}: digitnet's JSON has index ${e.index}`);
    const mine = new Float64Array(10);
    for (const t of e.top) mine[t.digit] = t.probability;
    let rowDiff = 0;
    for (let c = 0; c < 10; c++) rowDiff = Math.max(rowDiff, Math.abs(p[r * 10 + c] - mine[c]));
    maxDiff = Math.max(maxDiff, rowDiff);
    if (rowDiff > 1e-6) rowsOver++;
    const cls = argmax(p, r * 10);
    if (cls === e.digit) same++;
    if (cls === data.labels[start + r]) correct++;
  }
}
const result = { rows: data.n, same_class: same / data.n, max_abs_diff: maxDiff, 'rows_over_1e-6': rowsOver,
  accuracy: correct / data.n };
console.log(JSON.stringify(result));
process.exit(result.same_class >= minSame && maxDiff <= maxAllowed && rowsOver / data.n <= maxOver ? 0 : 1);
