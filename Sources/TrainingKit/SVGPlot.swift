import Foundation

/// A line chart written as SVG by hand, in the style of the book's `plot_values`: training and
/// validation curves against epochs (bottom axis) with a second axis on top giving examples seen.
public struct LinePlot {
    public struct Series {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public var color: String
        public var dashed: Bool

        public init(name: String, points: [(x: Double, y: Double)], color: String, dashed: Bool) {
            self.name = name
            self.points = points
            self.color = color
            self.dashed = dashed
        }
    }

    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    /// Top axis: its label and how many top-axis units one bottom-axis unit is (examples per epoch).
    public var topAxis: (label: String, unitsPerX: Double)?
    public var width = 640.0
    public var height = 420.0

    public init(xLabel: String, yLabel: String, series: [Series], topAxis: (label: String, unitsPerX: Double)? = nil) {
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
        self.topAxis = topAxis
    }

    /// About `target` evenly spaced round numbers (1, 2 or 5 times a power of ten) covering lo...hi.
    public static func ticks(_ lo: Double, _ hi: Double, target: Int = 6) -> [Double] {
        guard hi > lo, lo.isFinite, hi.isFinite else { return [lo] }
        let rough = (hi - lo) / Double(target)
        let mag = pow(10, floor(log10(rough)))
        let step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= rough } ?? 10 * mag
        var out: [Double] = []
        var k = (lo / step).rounded(.up)
        while k * step <= hi + step * 1e-9 {
            // Print-and-parse drops float noise such as 0.6000000000000001.
            out.append(Double(String(format: "%.12g", k * step)) ?? k * step)
            k += 1
        }
        return out
    }

    static func format(_ v: Double) -> String {
        if v == v.rounded() && abs(v) < 1e9 { return String(Int(v)) }
        var s = String(format: "%.3f", v)
        while s.hasSuffix("0") { s.removeLast() }
        return s
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }

    public func svg() -> String {
        let left = 72.0, right = 24.0, top = topAxis == nil ? 24.0 : 64.0, bottom = 56.0
        let plotW = width - left - right, plotH = height - top - bottom
        let xs = series.flatMap { $0.points.map(\.x) }, ys = series.flatMap { $0.points.map(\.y) }.filter(\.isFinite)
        var xLo = min(0, xs.min() ?? 0), xHi = xs.max() ?? 1
        if xHi <= xLo { xHi = xLo + 1 }
        var yLo = ys.min() ?? 0, yHi = ys.max() ?? 1
        if yHi - yLo < 1e-9 { yLo -= 0.5; yHi += 0.5 }
        let pad = (yHi - yLo) * 0.06
        yLo -= pad; yHi += pad
        xLo = min(xLo, 0)
        func px(_ x: Double) -> Double { left + (x - xLo) / (xHi - xLo) * plotW }
        func py(_ y: Double) -> Double { top + (1 - (y - yLo) / (yHi - yLo)) * plotH }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }

        var out = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="13">
        <rect width="100%" height="100%" fill="white"/>

        """
        // Grid and y ticks.
        for t in LinePlot.ticks(yLo, yHi) {
            out += "<line x1=\"\(f(left))\" y1=\"\(f(py(t)))\" x2=\"\(f(left + plotW))\" y2=\"\(f(py(t)))\" stroke=\"#e4e4e4\"/>\n"
            out += "<text x=\"\(f(left - 8))\" y=\"\(f(py(t) + 4))\" text-anchor=\"end\">\(LinePlot.format(t))</text>\n"
        }
        // Bottom x ticks.
        for t in LinePlot.ticks(xLo, xHi) {
            out += "<line x1=\"\(f(px(t)))\" y1=\"\(f(top + plotH))\" x2=\"\(f(px(t)))\" y2=\"\(f(top + plotH + 5))\" stroke=\"#333\"/>\n"
            out += "<text x=\"\(f(px(t)))\" y=\"\(f(top + plotH + 20))\" text-anchor=\"middle\">\(LinePlot.format(t))</text>\n"
        }
        out += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 14))\" text-anchor=\"middle\">\(LinePlot.escape(xLabel))</text>\n"
        // Top axis in other units (examples seen).
        if let axis = topAxis, axis.unitsPerX > 0 {
            for t in LinePlot.ticks(xLo * axis.unitsPerX, xHi * axis.unitsPerX) {
                let x = px(t / axis.unitsPerX)
                out += "<line x1=\"\(f(x))\" y1=\"\(f(top))\" x2=\"\(f(x))\" y2=\"\(f(top - 5))\" stroke=\"#333\"/>\n"
                out += "<text x=\"\(f(x))\" y=\"\(f(top - 10))\" text-anchor=\"middle\">\(LinePlot.format(t))</text>\n"
            }
            out += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(20))\" text-anchor=\"middle\">\(LinePlot.escape(axis.label))</text>\n"
        }
        out += "<text transform=\"translate(18 \(f(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">\(LinePlot.escape(yLabel))</text>\n"
        out += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotW))\" height=\"\(f(plotH))\" fill=\"none\" stroke=\"#333\"/>\n"
        // Curves.
        for s in series where !s.points.isEmpty {
            let pts = s.points.filter { $0.y.isFinite }.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
            let dash = s.dashed ? " stroke-dasharray=\"7 4 2 4\"" : ""
            out += "<polyline points=\"\(pts)\" fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"2\"\(dash)/>\n"
            if s.points.count <= 12 {
                for p in s.points where p.y.isFinite {
                    out += "<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"3\" fill=\"\(s.color)\"/>\n"
                }
            }
        }
        // Legend, top right inside the plot.
        // Legend inside the plot, in the right-hand corner (top or bottom) that covers fewer points.
        let lineH = 20.0
        let legendW = 60 + 7.6 * Double(series.map(\.name.count).max() ?? 10)
        let legendH = Double(series.count) * lineH + 10
        let lx = left + plotW - legendW - 10
        func covered(_ y0: Double) -> Int {
            series.flatMap(\.points).filter { px($0.x) >= lx - 10 && py($0.y) >= y0 - 10 && py($0.y) <= y0 + legendH + 10 }.count
        }
        let topY = top + 10, bottomY = top + plotH - legendH - 10
        let ly = covered(topY) <= covered(bottomY) ? topY : bottomY
        out += "<rect x=\"\(f(lx))\" y=\"\(f(ly))\" width=\"\(f(legendW))\" height=\"\(f(legendH))\" fill=\"white\" fill-opacity=\"0.9\" stroke=\"#bbb\"/>\n"
        for (i, s) in series.enumerated() {
            let y = ly + 15 + Double(i) * lineH
            let dash = s.dashed ? " stroke-dasharray=\"7 4 2 4\"" : ""
            out += "<line x1=\"\(f(lx + 8))\" y1=\"\(f(y))\" x2=\"\(f(lx + 40))\" y2=\"\(f(y))\" stroke=\"\(s.color)\" stroke-width=\"2\"\(dash)/>\n"
            out += "<text x=\"\(f(lx + 48))\" y=\"\(f(y + 4))\">\(LinePlot.escape(s.name))</text>\n"
        }
        out += "</svg>\n"
        return out
    }
}

/// The two plots of chapter 6 (loss and accuracy against epochs and examples seen) from a training log.
public enum TrainingPlots {
    /// examplesPerEpoch: examples seen per epoch (batches per epoch x batch size), for the top axis.
    public static func loss(_ log: [LogRecord], examplesPerEpoch: Double) -> LinePlot {
        let evals = log.filter { $0.kind == "eval" }
        return LinePlot(xLabel: "Epochs", yLabel: "Loss", series: [
            .init(name: "Training loss", points: evals.compactMap { r in r.trainLoss.map { (r.epochProgress, $0) } }, color: "#1f77b4", dashed: false),
            .init(name: "Validation loss", points: evals.compactMap { r in r.valLoss.map { (r.epochProgress, $0) } }, color: "#ff7f0e", dashed: true),
        ], topAxis: ("Examples seen", examplesPerEpoch))
    }

    public static func accuracy(_ log: [LogRecord], examplesPerEpoch: Double) -> LinePlot {
        let epochs = log.filter { $0.kind == "epoch" }
        return LinePlot(xLabel: "Epochs", yLabel: "Accuracy", series: [
            .init(name: "Training accuracy", points: epochs.compactMap { r in r.trainAccuracy.map { (r.epochProgress, $0) } }, color: "#1f77b4", dashed: false),
            .init(name: "Validation accuracy", points: epochs.compactMap { r in r.valAccuracy.map { (r.epochProgress, $0) } }, color: "#ff7f0e", dashed: true),
        ], topAxis: ("Examples seen", examplesPerEpoch))
    }
}
