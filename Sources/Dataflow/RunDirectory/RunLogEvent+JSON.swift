import Foundation
import Materialize
import ObjectStore

/// A fast writer of run-log lines: the scheduler writes one or two per task, and Foundation's
/// JSONEncoder costs more than the rest of dispatching a trivial task. It writes exactly what
/// `RunLogEvent`'s `Decodable` conformance reads (a test checks the round trip); dates are
/// seconds since 1970.
extension RunLogEvent {
    func jsonLine(into out: inout _ByteBuffer) {
        var writer = _JSONObjectWriter(opening: out)
        writer.plainString("kind", kind.rawValue)
        // What a line shares with its run is left out (`RunLog.read` fills it in): the run id
        // outside the run's first and last lines, and an attempt's time (its end).
        if !(kind == .attempt && end == time) { writer.date("time", time) }
        if kind == .runStarted || kind == .runFinished { writer.string("runID", runID) }
        writer.string("task", task)
        writer.string("executor", executor)
        writer.string("node", node)
        writer.int("exitStatus", exitStatus)
        writer.int("signal", signal)
        writer.string("engineState", engineState)
        writer.int("attempt", attempt)
        writer.date("start", start)
        writer.date("end", end)
        writer.plainString("outcome", outcome?.rawValue)
        writer.string("message", message)
        writer.int("bytesIn", bytesIn)
        writer.int("bytesOut", bytesOut)
        if let value {
            writer.key("value")
            var nested = _JSONObjectWriter(opening: writer.out)
            nested.objectID("id", value.id)
            if value.name != task { nested.string("name", value.name) }
            nested.plainString("policy", value.policy.rawValue)
            nested.int("byteCount", value.byteCount)
            if !value.files.isEmpty { nested.strings("files", value.files) }
            nested.bool("inMemory", value.inMemory)
            nested.int("remainingConsumers", value.remainingConsumers)
            nested.string("reason", value.reason)
            nested.uint64("contentHash", value.contentHash)
            writer.out = nested.finish()
        }
        if let lineage {
            writer.key("lineage")
            var nested = _JSONObjectWriter(opening: writer.out)
            nested.hash("key", lineage.key)
            if lineage.token != lineage.key { nested.hash("token", lineage.token) }
            if lineage.definition != lineage.key { nested.hash("definition", lineage.definition) }
            if let parameters = lineage.parameters { nested.hash("parameters", parameters) }
            if !lineage.inputs.isEmpty { nested.hashes("inputs", lineage.inputs) }
            nested.string("version", lineage.version)
            if let files = lineage.files { nested.strings("files", files) }
            nested.string("keptFile", lineage.keptFile)
            nested.string("fromRun", lineage.fromRun)
            writer.out = nested.finish()
        }
        writer.string("logFile", logFile)
        writer.int("taskCount", taskCount)
        writer.int("succeeded", succeeded)
        writer.int("failed", failed)
        writer.int("skipped", skipped)
        writer.int("reused", reused)
        writer.string("workflow", workflow)
        if let results {
            writer.key("results")
            writer.array(results) { nested, result in
                nested.string("task", result.task)
                nested.int("byteCount", result.byteCount)
                if let files = result.files { nested.strings("files", files) }
                nested.string("fromRun", result.fromRun)
                nested.string("keptFile", result.keptFile)
            }
        }
        writer.int("resultCount", resultCount)
        if let executors { writer.strings("executors", executors) }
        if let failures {
            writer.key("failures")
            writer.array(failures) { nested, failure in
                nested.string("task", failure.task)
                nested.plainString("outcome", failure.outcome.rawValue)
                nested.int("attempts", failure.attempts)
                nested.string("message", failure.message)
            }
        }
        if let valueCounts {
            writer.key("valueCounts")
            var nested = _JSONObjectWriter(opening: writer.out)
            nested.int("inMemory", valueCounts.inMemory)
            nested.int("inFiles", valueCounts.inFiles)
            nested.int("freed", valueCounts.freed)
            writer.out = nested.finish()
        }
        out = writer.finish()
        out.append(UInt8(ascii: "\n"))
    }

    /// The event as one JSON line, with its newline (for tests and tools).
    func jsonLine() -> [UInt8] {
        var buffer = _ByteBuffer(capacity: 512)
        defer { buffer.deallocate() }
        jsonLine(into: &buffer)
        return Array(buffer.bytes)
    }
}

/// Appends one JSON object, field by field, skipping nil fields.
struct _JSONObjectWriter {
    /// The buffer, lent by value: the caller takes it back from `finish()` (it may have grown).
    var out: _ByteBuffer
    private var first = true

    init(opening buffer: _ByteBuffer) {
        out = buffer
        out.append(UInt8(ascii: "{"))
    }

    /// Closes the object and returns the buffer.
    mutating func finish() -> _ByteBuffer {
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// `"name":` — keys are literals, known to need no escaping, and are copied as they are.
    mutating func key(_ name: StaticString) {
        let comma = !first
        first = false
        let length = name.utf8CodeUnitCount
        out.append(upTo: length + 4) { to in
            var at = 0
            if comma { to[0] = UInt8(ascii: ","); at = 1 }
            to[at] = UInt8(ascii: "\"")
            (to + at + 1).update(from: name.utf8Start, count: length)
            to[at + 1 + length] = UInt8(ascii: "\"")
            to[at + 2 + length] = UInt8(ascii: ":")
            return at + 3 + length
        }
    }

    /// A string known to need no escaping (an enum's raw value), copied as it is.
    mutating func plainString(_ name: StaticString, _ value: String?) {
        guard var value else { return }
        key(name)
        value.withUTF8 { bytes in
            out.append(upTo: bytes.count + 2) { to in
                to[0] = UInt8(ascii: "\"")
                if let source = bytes.baseAddress { (to + 1).update(from: source, count: bytes.count) }
                to[bytes.count + 1] = UInt8(ascii: "\"")
                return bytes.count + 2
            }
        }
    }

    mutating func string(_ name: StaticString, _ value: String?) {
        guard let value else { return }
        key(name)
        appendString(value)
    }

    /// A JSON array of objects, each written by `body` (after `key`).
    mutating func array<Element>(_ elements: [Element], _ body: (inout _JSONObjectWriter, Element) -> Void) {
        out.append(UInt8(ascii: "["))
        for (index, element) in elements.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            var nested = _JSONObjectWriter(opening: out)
            body(&nested, element)
            out = nested.finish()
        }
        out.append(UInt8(ascii: "]"))
    }

    mutating func strings(_ name: StaticString, _ values: [String]) {
        key(name)
        out.append(UInt8(ascii: "["))
        for (index, value) in values.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            appendString(value)
        }
        out.append(UInt8(ascii: "]"))
    }

    mutating func int(_ name: StaticString, _ value: Int?) {
        guard let value else { return }
        key(name)
        appendDecimal(value)
    }

    /// A 64-bit hash as a string of 16 hex digits (`ContentHash.hex`), written straight into the buffer.
    mutating func hash(_ name: StaticString, _ value: UInt64) {
        key(name)
        appendHash(value)
    }

    mutating func hashes(_ name: StaticString, _ values: [UInt64]) {
        key(name)
        out.append(UInt8(ascii: "["))
        for (index, value) in values.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            appendHash(value)
        }
        out.append(UInt8(ascii: "]"))
    }

    private mutating func appendHash(_ value: UInt64) {
        out.append(upTo: 18) { to in
            let digits: StaticString = "0123456789abcdef"
            to[0] = UInt8(ascii: "\"")
            for position in 0..<16 {
                to[1 + position] = digits.utf8Start[Int((value >> UInt64(60 - 4 * position)) & 0xF)]
            }
            to[17] = UInt8(ascii: "\"")
            return 18
        }
    }

    mutating func uint64(_ name: StaticString, _ value: UInt64?) {
        guard let value else { return }
        key(name)
        out.append(upTo: 20) { to in Self.writeDecimal(value, to: to) }
    }

    /// An object id as a string of 32 hex digits, written straight into the buffer.
    mutating func objectID(_ name: StaticString, _ id: ObjectID) {
        key(name)
        out.append(upTo: 34) { to in
            let digits: StaticString = "0123456789abcdef"
            to[0] = UInt8(ascii: "\"")
            for position in 0..<32 {
                let half = position < 16 ? id.high : id.low
                to[1 + position] = digits.utf8Start[Int((half >> UInt64(60 - 4 * (position & 15))) & 0xf)]
            }
            to[33] = UInt8(ascii: "\"")
            return 34
        }
    }

    mutating func bool(_ name: StaticString, _ value: Bool) {
        key(name)
        out.append(value ? "true" : "false")
    }

    /// Seconds since 1970 with six decimals (microseconds), written with integer arithmetic.
    mutating func date(_ name: StaticString, _ value: Date?) {
        guard let value else { return }
        key(name)
        let microseconds = (value.timeIntervalSince1970 * 1e6).rounded()
        guard microseconds >= 0 && microseconds < 1e17 else {
            var text = "\(value.timeIntervalSince1970)"
            text.withUTF8 { out.append(UnsafeRawBufferPointer($0)) }
            return
        }
        let whole = UInt64(microseconds)
        out.append(upTo: 19) { to in
            var at = Self.writeDecimal(whole / 1_000_000, to: to)
            to[at] = UInt8(ascii: ".")
            at += 1
            var fraction = whole % 1_000_000
            for position in stride(from: 5, through: 0, by: -1) {
                to[at + position] = UInt8(ascii: "0") + UInt8(fraction % 10)
                fraction /= 10
            }
            return at + 6
        }
    }

    /// A decimal integer, written straight into the buffer.
    private mutating func appendDecimal(_ value: Int) {
        out.append(upTo: 20) { to in
            if value < 0 {
                to[0] = UInt8(ascii: "-")
                return 1 + Self.writeDecimal(value.magnitude, to: to + 1)
            }
            return Self.writeDecimal(value.magnitude, to: to)
        }
    }

    /// Writes `value`'s decimal digits at `to` (room for 20) and returns how many.
    @inline(__always) private static func writeDecimal(_ value: UInt, to: UnsafeMutablePointer<UInt8>) -> Int {
        writeDecimal(UInt64(value), to: to)
    }

    @inline(__always) private static func writeDecimal(_ value: UInt64, to: UnsafeMutablePointer<UInt8>) -> Int {
        var length = 1
        var probe = value
        while probe >= 10 {
            probe /= 10
            length += 1
        }
        var remaining = value
        for position in stride(from: length - 1, through: 0, by: -1) {
            to[position] = UInt8(ascii: "0") + UInt8(remaining % 10)
            remaining /= 10
        }
        return length
    }

    /// A JSON string: quotes, backslashes and control characters escaped; UTF-8 as is.
    private mutating func appendString(_ value: String) {
        out.append(UInt8(ascii: "\""))
        // Fast path: most strings need no escaping, and are copied whole.
        var value = value
        let copied = value.withUTF8 { bytes -> Bool in
            for byte in bytes where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { return false }
            out.append(UnsafeRawBufferPointer(bytes))
            return true
        }
        if copied {
            out.append(UInt8(ascii: "\""))
            return
        }
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append("\\\"")
            case UInt8(ascii: "\\"): out.append("\\\\")
            case UInt8(ascii: "\n"): out.append("\\n")
            case UInt8(ascii: "\r"): out.append("\\r")
            case UInt8(ascii: "\t"): out.append("\\t")
            case 0..<0x20:
                let hex: StaticString = "0123456789abcdef"
                out.append("\\u00")
                out.append(hex.utf8Start[Int(byte >> 4)])
                out.append(hex.utf8Start[Int(byte & 15)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
