import Foundation
import Quantization

/// A Linear layer's weight as the kernels read it: float32 in our [in, out] (Conv1D) layout, or
/// quantized in the [out, in] layout of nn.Linear (Quantization.QuantizedLinear).
enum LinearWeight {
    case dense(UnsafePointer<Float>)
    case quantized(QuantizedLinear)
}

/// Output channels per dequantized tile: about 8 MB of float32, a multiple of 16.
func quantizedTileRows(inDim: Int) -> Int { max(16, (1 << 21) / max(1, inDim) / 16 * 16) }

/// Up to this many rows (a short prompt) a product reads the codes directly (`product`):
/// unpacking each weight once for all rows costs less than writing and packing float tiles for
/// sgemm (gpt2-medium's c_attn [3072, 1024] times 20 rows on one core: 1.9 ms against 3.7 ms
/// with a tile already in memory, 9.6 ms with a fresh one; docs/benchmarks.md).
let directProductMaxRows = 32

/// y = x @ W + b as `linearForward`, for either kind of weight. A quantized weight never exists
/// as a whole float32 matrix: one row (decoding) goes through the matrix-vector kernel that reads
/// the codes directly, a few rows (a prompt) through the kernel that unpacks each weight once
/// for all of them; more rows through tiles of output channels, each dequantized into a
/// small buffer and multiplied by sgemm (Y[:, tile] = X · tile^T).
func linearForward(_ x: UnsafePointer<Float>, rows: Int, inDim: Int, outDim: Int,
                   weight: LinearWeight, bias: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>) {
    guard case .quantized(let q) = weight else {
        if case .dense(let w) = weight {
            linearForward(x, rows: rows, inDim: inDim, outDim: outDim, weight: w, bias: bias, out: out)
        }
        return
    }
    precondition(q.rows == outDim && q.cols == inDim, "quantized weight [\(q.rows), \(q.cols)] used as [\(outDim), \(inDim)]")
    if let bias { broadcastRows(bias, rows: rows, cols: outDim, into: out) }
    if rows == 1 && q.hasDirectMatvec {
        let prepared = q.prepare(x)
        parallelRows(outDim, grain: 64) { r in q.matvec(prepared, rows: r, y: out, accumulate: bias != nil) }
        return
    }
    if rows <= directProductMaxRows && q.hasDirectProduct {
        let prepared = q.prepare(x, rows: rows)
        parallelRows(outDim, grain: 16) { r in q.product(prepared, outputs: r, y: out, ldy: outDim, accumulate: bias != nil) }
        return
    }
    forEachDequantizedTile(q) { tile, r in
        parallelSgemm(transB: true, M: rows, N: r.count, K: inDim, A: x, lda: inDim, B: tile, ldb: inDim,
                      beta: bias == nil ? 0 : 1, C: out + r.lowerBound, ldc: outDim)
    }
}

/// dX (+)= dY @ W^T of a quantized weight ([out, in]: dX = dY · W), by blocks of input columns:
/// dX[:, block] = dY · W[:, block], each block of all output channels dequantized (about 8 MB)
/// and multiplied with the full inner dimension, so every element of dX is written once. The
/// weight is frozen: there is no dW (QLoRA trains only the adapters beside it).
func quantizedLinearBackwardInput(dY: UnsafePointer<Float>, rows: Int, q: QuantizedLinear,
                                  dX: UnsafeMutablePointer<Float>, accumulate: Bool) {
    let blockColumns = min(q.cols, max(64, (1 << 21) / max(1, q.rows) / 64 * 64))
    let tile = UnsafeMutablePointer<Float>.allocate(capacity: q.rows * blockColumns)
    defer { tile.deallocate() }
    var start = 0
    while start < q.cols {
        let columns = start..<min(q.cols, start + blockColumns)
        parallelRows(q.rows, grain: 16) { r in q.dequantize(rows: r, columns: columns, into: tile + r.lowerBound * columns.count) }
        parallelSgemm(M: rows, N: columns.count, K: q.rows, A: dY, lda: q.rows, B: tile, ldb: columns.count,
                      beta: accumulate ? 1 : 0, C: dX + columns.lowerBound, ldc: q.cols)
        start = columns.upperBound
    }
}

/// Calls `body` with each tile of output channels dequantized ([r.count, cols], row-major); the
/// dequantization of a tile is split over the cores.
private func forEachDequantizedTile(_ q: QuantizedLinear, _ body: (UnsafePointer<Float>, Range<Int>) -> Void) {
    let tileRows = quantizedTileRows(inDim: q.cols)
    let tile = UnsafeMutablePointer<Float>.allocate(capacity: tileRows * q.cols)
    defer { tile.deallocate() }
    var start = 0
    while start < q.rows {
        let r = start..<min(q.rows, start + tileRows)
        parallelRows(r.count, grain: 16) { sub in
            q.dequantize(rows: (r.lowerBound + sub.lowerBound)..<(r.lowerBound + sub.upperBound), into: tile + sub.lowerBound * q.cols)
        }
        body(tile, r)
        start = r.upperBound
    }
}

/// `linearBackward` for either kind of weight; a quantized weight is frozen (dW must be nil).
func linearBackward(dY: UnsafePointer<Float>, x: UnsafePointer<Float>, rows: Int, inDim: Int, outDim: Int,
                    weight: LinearWeight, dX: UnsafeMutablePointer<Float>?, accumulateDX: Bool = false,
                    dW: UnsafeMutablePointer<Float>?, dB: UnsafeMutablePointer<Float>?) {
    switch weight {
    case .dense(let w):
        linearBackward(dY: dY, x: x, rows: rows, inDim: inDim, outDim: outDim, weight: w, dX: dX,
                       accumulateDX: accumulateDX, dW: dW, dB: dB)
    case .quantized(let q):
        precondition(dW == nil, "a quantized base weight is frozen")
        if let dX { quantizedLinearBackwardInput(dY: dY, rows: rows, q: q, dX: dX, accumulate: accumulateDX) }
        if let dB { columnSumsAccumulate(dY, rows: rows, cols: outDim, into: dB) }
    }
}
