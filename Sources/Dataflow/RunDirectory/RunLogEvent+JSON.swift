import Foundation
import Materialize
import ObjectStore

/// A fast writer of run-log lines: the scheduler writes one or two per task, and Foundation's
/// JSONEncoder costs more than the rest of dispatching a trivial task. It writes exactly what
/// `RunLogEvent`'s `Decodable` conformance reads (a test checks the round trip); dates are
/// seconds since 1970.
extension RunLogEvent {
    func jsonLine(into out: inout [UInt8]) {
        var writer = _JSONObjectWriter(out: out)
        writer.string("kind", kind.rawValue)
        writer.date("time", time)
        writer.string("runID", runID)
        writer.string("task", task)
        writer.string("executor", executor)
        writer.int("attempt", attempt)
        writer.date("start", start)
        writer.date("end", end)
        writer.string("outcome", outcome?.rawValue)
        writer.string("message", message)
        writer.int("bytesIn", bytesIn)
        writer.int("bytesOut", bytesOut)
        if let value {
            writer.key("value")
            var nested = _JSONObjectWriter(out: writer.out)
            nested.string("id", value.id.description)
            nested.string("name", value.name)
            nested.string("policy", value.policy.rawValue)
            nested.int("byteCount", value.byteCount)
            nested.strings("files", value.files)
            nested.bool("inMemory", value.inMemory)
            nested.int("remainingConsumers", value.remainingConsumers)
            nested.string("reason", value.reason)
            writer.out = nested.finish()
        }
        writer.string("logFile", logFile)
        writer.int("taskCount", taskCount)
        writer.int("succeeded", succeeded)
        writer.int("failed", failed)
        writer.int("skipped", skipped)
        out = writer.finish()
        out.append(UInt8(ascii: "\n"))
    }
}

/// Appends one JSON object, field by field, skipping nil fields.
struct _JSONObjectWriter {
    var out: [UInt8]
    private var first = true

    init(out: [UInt8]) {
        self.out = out
        self.out.append(UInt8(ascii: "{"))
    }

    mutating func finish() -> [UInt8] {
        out.append(UInt8(ascii: "}"))
        return out
    }

    mutating func key(_ name: String) {
        if !first { out.append(UInt8(ascii: ",")) }
        first = false
        appendString(name)
        out.append(UInt8(ascii: ":"))
    }

    mutating func string(_ name: String, _ value: String?) {
        guard let value else { return }
        key(name)
        appendString(value)
    }

    mutating func strings(_ name: String, _ values: [String]) {
        key(name)
        out.append(UInt8(ascii: "["))
        for (index, value) in values.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            appendString(value)
        }
        out.append(UInt8(ascii: "]"))
    }

    mutating func int(_ name: String, _ value: Int?) {
        guard let value else { return }
        key(name)
        out.append(contentsOf: String(value).utf8)
    }

    mutating func bool(_ name: String, _ value: Bool) {
        key(name)
        out.append(contentsOf: (value ? "true" : "false").utf8)
    }

    mutating func date(_ name: String, _ value: Date?) {
        guard let value else { return }
        key(name)
        out.append(contentsOf: "\(value.timeIntervalSince1970)".utf8)
    }

    /// A JSON string: quotes, backslashes and control characters escaped; UTF-8 as is.
    private mutating func appendString(_ value: String) {
        out.append(UInt8(ascii: "\""))
        // Fast path: most strings need no escaping, and are copied whole.
        if !value.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            out.append(contentsOf: value.utf8)
            out.append(UInt8(ascii: "\""))
            return
        }
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case UInt8(ascii: "\n"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case UInt8(ascii: "\r"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case UInt8(ascii: "\t"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(byte >> 4)], hex[Int(byte & 15)]])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
