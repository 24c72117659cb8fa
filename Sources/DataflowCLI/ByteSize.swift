import Foundation

/// A byte count as people write it: `4096`, `64KiB`, `1MiB`, `1GiB` (binary), `1MB`, `1.5GB`
/// (decimal), `16M`, `1G` (binary). Prints in the largest binary unit that divides it exactly.
///
/// - Note: A value type; thread-safe.
public struct ByteSize: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var bytes: Int

    public init(_ bytes: Int) { self.bytes = bytes }

    /// Why a size does not parse.
    public struct ParseError: Error, Sendable, Equatable {
        /// What was wrong, in words.
        public var reason: String
    }

    /// Units by (lowercased) suffix.
    private static let units: [(suffix: String, factor: Double)] = [
        ("kib", 0x1p10), ("mib", 0x1p20), ("gib", 0x1p30), ("tib", 0x1p40),
        ("kb", 1e3), ("mb", 1e6), ("gb", 1e9), ("tb", 1e12),
        ("k", 0x1p10), ("m", 0x1p20), ("g", 0x1p30), ("t", 0x1p40),
        ("b", 1), ("", 1),
    ]

    /// Parses `text`.
    /// - Throws: `ParseError` saying why it is no size.
    public init(parsing text: String) throws(ParseError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let lower = trimmed.lowercased()
        let numberPart = String(lower.prefix { $0.isNumber || $0 == "." })
        let suffix = String(lower.dropFirst(numberPart.count)).trimmingCharacters(in: .whitespaces)
        guard !numberPart.isEmpty, let number = Double(numberPart) else {
            throw ParseError(reason: "expected a number followed by an optional unit")
        }
        guard let unit = Self.units.first(where: { $0.suffix == suffix }) else {
            throw ParseError(reason: "unknown unit '\(suffix)' (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)")
        }
        let value = number * unit.factor
        guard value >= 1 else { throw ParseError(reason: "a size must be at least 1 byte") }
        guard value < Double(1 << 50) else { throw ParseError(reason: "too large") }
        guard value == value.rounded() else {
            throw ParseError(reason: "not a whole number of bytes")
        }
        self.bytes = Int(value)
    }

    public static func < (lhs: ByteSize, rhs: ByteSize) -> Bool { lhs.bytes < rhs.bytes }

    /// `512MiB`, `1GiB`, `3KiB`, or `1000B`.
    public var description: String {
        for (suffix, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] where bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return "\(bytes >> shift)\(suffix)"
        }
        return "\(bytes)B"
    }

    /// A rounded, human form: `1.5 GiB`, `640 KiB`, `12 B`.
    public static func human(_ bytes: Int) -> String {
        let value = Double(bytes)
        for (suffix, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] where value >= Double(1 << shift) {
            let scaled = value / Double(1 << shift)
            return scaled >= 100 || scaled == scaled.rounded() ? "\(Int(scaled.rounded())) \(suffix)" : String(format: "%.1f", scaled) + " " + suffix
        }
        return "\(bytes) B"
    }
}

