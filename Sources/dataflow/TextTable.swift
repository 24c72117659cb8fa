import Foundation

/// A plain-text table: a header row, aligned columns, two spaces between them. Numeric-looking
/// columns are right-aligned.
struct TextTable {
    var header: [String]
    var rows: [[String]] = []
    /// Columns to right-align, by index.
    var rightAligned: Set<Int> = []

    init(_ header: [String], rightAligned: Set<Int> = []) {
        self.header = header
        self.rightAligned = rightAligned
    }

    mutating func append(_ row: [String]) { rows.append(row) }

    /// The table, one line per row, each ending in a newline.
    func render() -> String {
        let all = [header] + rows
        var widths = Array(repeating: 0, count: header.count)
        for row in all { for (index, cell) in row.enumerated() where index < widths.count { widths[index] = max(widths[index], cell.count) } }
        var out = ""
        for row in all {
            var line = ""
            for (index, cell) in row.enumerated() where index < widths.count {
                let pad = String(repeating: " ", count: widths[index] - cell.count)
                let isLast = index == row.count - 1
                if rightAligned.contains(index) { line += pad + cell } else { line += cell + (isLast ? "" : pad) }
                if !isLast { line += "  " }
            }
            out += line + "\n"
        }
        return out
    }
}

/// Durations and dates as people read them.
enum Format {
    /// `850 ns`, `12.3 µs`, `4.56 ms`, `1.23 s`.
    static func seconds(_ value: Double) -> String {
        let magnitude = abs(value)
        if magnitude == 0 { return "0 s" }
        if magnitude < 1e-6 { return String(format: "%.0f ns", value * 1e9) }
        if magnitude < 1e-3 { return String(format: "%.1f µs", value * 1e6) }
        if magnitude < 1 { return String(format: "%.2f ms", value * 1e3) }
        return String(format: "%.2f s", value)
    }

    /// `2026-11-21 14:03:05` in local time.
    static func date(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return formatter.string(from: date)
    }

    /// `14:03:05.123` in local time.
    static func time(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "HH:mm:ss.SSS"
        return formatter.string(from: date)
    }

    /// ISO 8601 with the time zone, for JSON.
    static func iso(_ date: Date) -> String {
        ISO8601DateFormatter().string(from: date)
    }

    /// Bytes per second as `1.23 GB/s` (decimal, as throughput usually is).
    static func throughput(bytes: Int, seconds: Double) -> String {
        guard seconds > 0 else { return "-" }
        let rate = Double(bytes) / seconds
        if rate >= 1e9 { return String(format: "%.2f GB/s", rate / 1e9) }
        if rate >= 1e6 { return String(format: "%.0f MB/s", rate / 1e6) }
        return String(format: "%.0f kB/s", rate / 1e3)
    }
}
