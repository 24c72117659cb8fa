import DataflowCLI
import Foundation

/// The bench's two figures, one per question, as hand-written SVG (any browser opens them;
/// `rsvg-convert` renders them in the tests):
///
/// - `passing.svg`: "how much faster is memory passing?" For each size, one bar per chain case
///   (files, then the store on each executor, with and without `always`, and the peers when
///   measured), its time per run written on it with the speed-up over `pass/disk`.
/// - `overheads.svg`: "what does a task cost?" The per-task and per-hop overheads beside their
///   bare-Swift floors, each with its multiple of the floor.
///
/// Bars in a group share a linear scale (the group's slowest bar is full width), so that the
/// ratios read at a glance.
struct BenchFigures {
    let results: [BenchResult]
    let title: String

    /// A bar: its case, its time, what is written after the time, its colour.
    struct Bar {
        var label: String
        var seconds: Double
        var note: String
        var color: String
    }

    struct Group {
        var title: String
        var bars: [Bar]
    }

    /// The chain cases, in the order they are drawn, with their colours.
    static let passingCases: [(name: String, color: String)] = [
        ("pass/disk", "#7f7f7f"), ("peer/numpy-chain", "#bdbdbd"),
        ("pass/memory-local[always]", "#9ecae1"), ("pass/memory-processes[always]", "#a1d99b"),
        ("pass/memory-local", "#1f77b4"), ("pass/memory-processes", "#2ca02c"), ("peer/ray-chain", "#ff7f0e"),
    ]

    /// Time per run of the chain through files against the store, by size.
    func passing() -> String {
        let sizes = Set(results.filter { $0.benchCase.hasPrefix("pass/") || $0.benchCase.hasPrefix("peer/") && $0.benchCase.hasSuffix("-chain") }.map(\.bytes)).sorted()
        var groups: [Group] = []
        for bytes in sizes {
            let disk = median("pass/disk", bytes)
            var bars: [Bar] = []
            for (name, color) in Self.passingCases {
                guard let seconds = median(name, bytes) else { continue }
                var note = Format.seconds(seconds)
                if let disk, name != "pass/disk" {
                    note += disk >= seconds ? String(format: " · %.1f× faster than pass/disk", disk / seconds) : String(format: " · %.1f× slower than pass/disk", seconds / disk)
                }
                bars.append(Bar(label: name, seconds: seconds, note: note, color: color))
            }
            if !bars.isEmpty { groups.append(Group(title: ByteSize(bytes).description + " per value", bars: bars)) }
        }
        return Self.draw(title: "Time per run of a chain: files against the store — \(title)", groups: groups)
    }

    /// The per-task and per-hop overheads against their floors.
    func overheads() -> String {
        var groups: [Group] = []
        for (ours, floor, heading) in [
            ("task/overhead-fanout", "baseline/taskgroup", "per task of a fan-out"), ("task/overhead-chain", "baseline/task-chain", "per hop of a chain"),
            ("task/overhead-chain-processes", "baseline/worker-pingpong", "per hop between worker processes"),
        ] {
            var bars: [Bar] = []
            let floorSeconds = results.first { $0.benchCase == floor }?.medianSeconds
            if let floorSeconds { bars.append(Bar(label: floor + (floor == "baseline/worker-pingpong" ? " (the bare round trip)" : " (bare Swift)"), seconds: floorSeconds, note: Format.seconds(floorSeconds), color: "#bdbdbd")) }
            if let seconds = results.first(where: { $0.benchCase == ours })?.medianSeconds {
                let note = Format.seconds(seconds) + (floorSeconds.map { String(format: " · %.1f× the floor", seconds / $0) } ?? "")
                bars.append(Bar(label: ours, seconds: seconds, note: note, color: "#1f77b4"))
            }
            if !bars.isEmpty { groups.append(Group(title: heading, bars: bars)) }
        }
        return Self.draw(title: "What a task and a hop cost, against their floors — \(title)", groups: groups)
    }

    private func median(_ name: String, _ bytes: Int) -> Double? {
        results.first { $0.benchCase == name && $0.bytes == bytes && $0.medianSeconds > 0 }?.medianSeconds
    }

    // MARK: Drawing

    static let width = 1000.0
    static let labelWidth = 260.0, barHeight = 20.0, barGap = 6.0, groupGap = 22.0, top = 56.0

    /// Horizontal bars in groups, each group on its own linear scale.
    static func draw(title: String, groups: [Group]) -> String {
        let rows = groups.reduce(0) { $0 + $1.bars.count }
        let height = top + Double(groups.count) * (groupGap + 18) + Double(rows) * (barHeight + barGap) + 30
        var out = """
            <?xml version="1.0" encoding="UTF-8"?>
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="13">
            <rect width="100%" height="100%" fill="white"/>
            <text x="20" y="30" font-size="16" font-weight="bold">\(escape(title))</text>

            """
        if groups.isEmpty { return out + "<text x=\"20\" y=\"70\">no results for this figure</text>\n</svg>\n" }
        var y = top
        // Room for the longest label (about 7 px a character at 13 px), at least `labelWidth`.
        let longestLabel = groups.flatMap(\.bars).map(\.label.count).max() ?? 0
        let barStart = 20 + max(labelWidth, 7.2 * Double(longestLabel)), barRoom = width - barStart - 300
        for group in groups {
            y += groupGap
            out += "<text x=\"20\" y=\"\(f(y))\" font-weight=\"bold\">\(escape(group.title))</text>\n"
            y += 8
            let longest = group.bars.map(\.seconds).max() ?? 1
            for bar in group.bars {
                let length = max(1, bar.seconds / longest * barRoom)
                out += "<text x=\"\(f(barStart - 8))\" y=\"\(f(y + barHeight - 6))\" text-anchor=\"end\">\(escape(bar.label))</text>\n"
                out += "<rect x=\"\(f(barStart))\" y=\"\(f(y))\" width=\"\(f(length))\" height=\"\(f(barHeight))\" fill=\"\(bar.color)\"><title>\(escape(bar.label)): \(escape(bar.note))</title></rect>\n"
                out += "<text x=\"\(f(barStart + length + 8))\" y=\"\(f(y + barHeight - 6))\">\(escape(bar.note))</text>\n"
                y += barHeight + barGap
            }
        }
        return out + "</svg>\n"
    }

    private static func f(_ value: Double) -> String { String(format: "%.1f", value) }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
