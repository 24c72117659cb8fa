import DataflowCLI
import Foundation

/// A hand-written SVG chart of a benchmark: median time against value size for each case, on
/// log-log axes, with decade grid lines, axis labels and a legend. Opens in any browser.
struct BenchChart {
    let results: [BenchResult]
    let title: String

    private let width = 1100.0, height = 640.0
    private let plot = (left: 90.0, top: 50.0, right: 760.0, bottom: 570.0)
    private static let palette = [
        "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
        "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
    ]

    func svg() -> String {
        let points = results.filter { $0.medianSeconds > 0 && $0.bytes > 0 }
        var out = """
            <?xml version="1.0" encoding="UTF-8"?>
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(f((plot.left + plot.right) / 2))" y="28" text-anchor="middle" font-size="16">\(escape(title))</text>

            """
        guard !points.isEmpty else { return out + "<text x=\"100\" y=\"100\">no results</text>\n</svg>\n" }
        // Axis ranges: whole decades around the data.
        let xs = points.map { log10(Double($0.bytes)) }, ys = points.map { log10($0.medianSeconds) }
        let xMin = floor(xs.min()!), xMax = max(ceil(xs.max()!), xMin + 1)
        let yMin = floor(ys.min()!), yMax = max(ceil(ys.max()!), yMin + 1)
        func px(_ bytes: Double) -> Double { plot.left + (log10(bytes) - xMin) / (xMax - xMin) * (plot.right - plot.left) }
        func py(_ seconds: Double) -> Double { plot.bottom - (log10(seconds) - yMin) / (yMax - yMin) * (plot.bottom - plot.top) }

        // Grid and tick labels.
        for decade in stride(from: xMin, through: xMax, by: 1) {
            let x = px(pow(10, decade))
            out += "<line x1=\"\(f(x))\" y1=\"\(f(plot.top))\" x2=\"\(f(x))\" y2=\"\(f(plot.bottom))\" stroke=\"#ddd\"/>\n"
            out += "<text x=\"\(f(x))\" y=\"\(f(plot.bottom + 18))\" text-anchor=\"middle\">\(escape(sizeLabel(pow(10, decade))))</text>\n"
        }
        for decade in stride(from: yMin, through: yMax, by: 1) {
            let y = py(pow(10, decade))
            out += "<line x1=\"\(f(plot.left))\" y1=\"\(f(y))\" x2=\"\(f(plot.right))\" y2=\"\(f(y))\" stroke=\"#ddd\"/>\n"
            out += "<text x=\"\(f(plot.left - 8))\" y=\"\(f(y + 4))\" text-anchor=\"end\">\(escape(Format.seconds(pow(10, decade))))</text>\n"
        }
        out += "<rect x=\"\(f(plot.left))\" y=\"\(f(plot.top))\" width=\"\(f(plot.right - plot.left))\" height=\"\(f(plot.bottom - plot.top))\" fill=\"none\" stroke=\"#333\"/>\n"
        out += "<text x=\"\(f((plot.left + plot.right) / 2))\" y=\"\(f(plot.bottom + 45))\" text-anchor=\"middle\" font-size=\"14\">value size (bytes, log scale)</text>\n"
        out += "<text transform=\"translate(22 \(f((plot.top + plot.bottom) / 2))) rotate(-90)\" text-anchor=\"middle\" font-size=\"14\">median time (seconds per run or per operation, log scale)</text>\n"

        // One series per case.
        var names: [String] = []
        for result in points where !names.contains(result.benchCase) { names.append(result.benchCase) }
        for (index, name) in names.enumerated() {
            let color = Self.palette[index % Self.palette.count]
            let series = points.filter { $0.benchCase == name }.sorted { $0.bytes < $1.bytes }
            let dashed = name.hasPrefix("baseline/") ? " stroke-dasharray=\"5 4\"" : ""
            if series.count > 1 {
                let path = series.map { "\(f(px(Double($0.bytes)))),\(f(py($0.medianSeconds)))" }.joined(separator: " ")
                out += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"\(dashed)/>\n"
            }
            for point in series {
                out += "<circle cx=\"\(f(px(Double(point.bytes))))\" cy=\"\(f(py(point.medianSeconds)))\" r=\"3.5\" fill=\"\(color)\">"
                out += "<title>\(escape(name)) \(escape(ByteSize(point.bytes).description)): median \(escape(Format.seconds(point.medianSeconds))), p90 \(escape(Format.seconds(point.p90Seconds)))</title></circle>\n"
            }
            // Legend entry.
            let y = plot.top + 8 + Double(index) * 20
            let x = plot.right + 25
            out += "<line x1=\"\(f(x))\" y1=\"\(f(y))\" x2=\"\(f(x + 24))\" y2=\"\(f(y))\" stroke=\"\(color)\" stroke-width=\"2\"\(dashed)/>"
            out += "<circle cx=\"\(f(x + 12))\" cy=\"\(f(y))\" r=\"3.5\" fill=\"\(color)\"/>"
            out += "<text x=\"\(f(x + 32))\" y=\"\(f(y + 4))\">\(escape(name))</text>\n"
        }
        return out + "</svg>\n"
    }

    private func f(_ value: Double) -> String { String(format: "%.1f", value) }

    private func sizeLabel(_ bytes: Double) -> String {
        switch bytes {
        case 1e9...: return String(format: "%.0f GB", bytes / 1e9)
        case 1e6...: return String(format: "%.0f MB", bytes / 1e6)
        case 1e3...: return String(format: "%.0f kB", bytes / 1e3)
        default: return String(format: "%.0f B", bytes)
        }
    }

    private func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
