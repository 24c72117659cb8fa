import ObjectStore

// The messages between a `ProcessExecutor` and its workers, in a compact binary form: one per
// attempt each way, so their cost is part of every hop (Foundation's JSON coders took ~60 µs of
// a hop). A message is a little-endian UInt32 byte count, then its fields in a fixed order:
// integers as 8 little-endian bytes, strings as a UInt32 byte count and UTF-8, flags as a byte.
// Both ends are this library, in one build: the first byte of a message is its format version.

/// Thrown when a message is cut short or malformed.
struct _WireError: Error, CustomStringConvertible {
    var description: String
}

/// Appends fields to a message.
struct _WireWriter {
    private(set) var bytes: [UInt8]

    init() {
        bytes = [0, 0, 0, 0]  // the length, filled in by `finish`
        bytes.reserveCapacity(512)  // a request or reply with a few inputs, without growing
    }

    mutating func u8(_ value: UInt8) { bytes.append(value) }
    mutating func u64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func int(_ value: Int) { u64(UInt64(bitPattern: Int64(value))) }
    mutating func string(_ value: String) {
        withUnsafeBytes(of: UInt32(value.utf8.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: value.utf8)
    }
    /// A UInt32 byte count, then `value` as it is.
    mutating func bytes(_ value: [UInt8]) {
        withUnsafeBytes(of: UInt32(value.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: value)
    }
    mutating func optionalString(_ value: String?) {
        u8(value == nil ? 0 : 1)
        if let value { string(value) }
    }

    /// The message with its length in front.
    mutating func finish() -> [UInt8] {
        let length = UInt32(bytes.count - 4).littleEndian
        withUnsafeBytes(of: length) { for (index, byte) in $0.enumerated() { bytes[index] = byte } }
        return bytes
    }
}

/// Reads the fields of one message (without its length prefix).
struct _WireReader {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func u8() throws(_WireError) -> UInt8 {
        guard offset < bytes.count else { throw _WireError(description: "message cut short at byte \(offset)") }
        defer { offset += 1 }
        return bytes[offset]
    }
    mutating func u64() throws(_WireError) -> UInt64 {
        guard offset + 8 <= bytes.count else { throw _WireError(description: "message cut short at byte \(offset)") }
        var value: UInt64 = 0
        for index in 0..<8 { value |= UInt64(bytes[offset + index]) << (8 * UInt64(index)) }
        offset += 8
        return value
    }
    mutating func int() throws(_WireError) -> Int { Int(truncatingIfNeeded: Int64(bitPattern: try u64())) }
    mutating func string() throws(_WireError) -> String {
        guard offset + 4 <= bytes.count else { throw _WireError(description: "message cut short at byte \(offset)") }
        var count = 0
        for index in 0..<4 { count |= Int(bytes[offset + index]) << (8 * index) }
        offset += 4
        guard offset + count <= bytes.count else { throw _WireError(description: "a string of \(count) bytes overruns the message") }
        defer { offset += count }
        return String(decoding: bytes[offset..<offset + count], as: UTF8.self)
    }
    mutating func optionalString() throws(_WireError) -> String? {
        try u8() == 0 ? nil : try string()
    }
    /// The string, or `candidate` itself if it has the same bytes.
    mutating func string(reusing candidate: String?) throws(_WireError) -> String {
        guard var candidate else { return try string() }
        let range = try bytesRange()
        if candidate.withUTF8({ _sameBytes(bytes[range], $0) }) { return candidate }
        return String(decoding: bytes[range], as: UTF8.self)
    }
    /// Where the next UInt32-counted run of bytes lies in the message (and skips it).
    mutating func bytesRange() throws(_WireError) -> Range<Int> {
        guard offset + 4 <= bytes.count else { throw _WireError(description: "message cut short at byte \(offset)") }
        var count = 0
        for index in 0..<4 { count |= Int(bytes[offset + index]) << (8 * index) }
        offset += 4
        guard offset + count <= bytes.count else { throw _WireError(description: "a field of \(count) bytes overruns the message") }
        defer { offset += count }
        return offset..<offset + count
    }
}

/// Splits a byte stream into length-prefixed messages.
struct _WireFramer {
    private var buffer: [UInt8] = []
    /// Messages longer than this are refused (a worker's or parent's bug, not data).
    static let maximumMessageBytes = 64 << 20

    mutating func append(_ bytes: some Collection<UInt8>) { buffer.append(contentsOf: bytes) }

    /// The next whole message, if one has arrived.
    mutating func next() throws(_WireError) -> [UInt8]? {
        guard buffer.count >= 4 else { return nil }
        let length = Int(buffer[0]) | Int(buffer[1]) << 8 | Int(buffer[2]) << 16 | Int(buffer[3]) << 24
        guard length <= Self.maximumMessageBytes else { throw _WireError(description: "a message claims \(length) bytes") }
        guard buffer.count >= 4 + length else { return nil }
        let message = Array(buffer[4..<4 + length])
        buffer.removeSubrange(0..<4 + length)
        return message
    }
}

private let wireVersion: UInt8 = 4

/// Whether `slice` holds exactly `bytes` (one `memcmp`).
func _sameBytes(_ slice: ArraySlice<UInt8>, _ bytes: some Collection<UInt8>) -> Bool {
    guard slice.count == bytes.count else { return false }
    guard !slice.isEmpty else { return true }
    return slice.withUnsafeBytes { left in
        bytes.withContiguousStorageIfAvailable { right in _Sys.equalBytes(left.baseAddress!, UnsafeRawPointer(right.baseAddress!), count: left.count) }
            ?? left.elementsEqual(bytes)
    }
}

extension ObjectDescriptor {
    fileprivate func write(to writer: inout _WireWriter) {
        writer.string(storeName)
        writer.u64(id.high)
        writer.u64(id.low)
        writer.u64(generation)
        writer.int(payloadOffset)
        writer.int(byteCount)
        writer.string(typeTag)
    }

    /// `storeNameLikely`: the name it probably has, taken as is when the bytes say so (no new
    /// string).
    fileprivate init(reading reader: inout _WireReader, storeNameLikely: String? = nil) throws(_WireError) {
        self.init(
            storeName: try reader.string(reusing: storeNameLikely), id: ObjectID(high: try reader.u64(), low: try reader.u64()),
            generation: try reader.u64(), payloadOffset: try reader.int(), byteCount: try reader.int(), typeTag: try reader.string())
    }
}

extension _PoolRequest {
    // A task request is the format version, then the run's part (what every attempt of a run
    // shares: a byte count, then run id, workflow, store, run directory, spill root, memory
    // wait), then the attempt's part. The parent encodes a run's part once
    // (`ProcessExecutor.requestRunPart`) and a worker decodes it once (`_PoolRequestDecoder`):
    // most of a request's strings are there.

    /// The run's part of the message, without its byte count.
    func runPart() -> [UInt8] {
        var writer = _WireWriter()
        writer.string(spec.runID)
        writer.optionalString(spec.workflow)
        writer.optionalString(spec.storeName)
        writer.string(spec.runDirectory)
        writer.string(spillRoot)
        writer.int(spec.memoryWaitSeconds.map { Int(min($0, 1e9) * 1000) } ?? -1)
        return Array(writer.finish().dropFirst(4))
    }

    /// The framed message. `runPart`: this request's `runPart()`, if the caller has it already.
    func wireMessage(runPart: [UInt8]? = nil) -> [UInt8] {
        var writer = _WireWriter()
        writer.u8(wireVersion)
        writer.bytes(runPart ?? self.runPart())
        writer.string(spec.taskName)
        writer.int(spec.attempt)
        writer.string(spec.resultPath)
        writer.u8(prefaultStore ? 1 : 0)
        writer.int(spec.timeoutSeconds.map { Int(min($0, 1e12) * 1e6) } ?? -1)
        writer.int(spec.inputs.count)
        for input in spec.inputs {
            switch input {
            case .object(let descriptor):
                writer.u8(0)
                descriptor.write(to: &writer)
            case .file(let path):
                writer.u8(1)
                writer.string(path)
            }
        }
        return writer.finish()
    }

    init(wire message: [UInt8]) throws(_WireError) {
        var decoder = _PoolRequestDecoder()
        self = try decoder.decode(message)
    }
}

/// The encoded run's part of the requests of the runs a `ProcessExecutor` serves, so that an
/// attempt encodes only its own part.
///
/// - Note: Thread-safe: `LockedValue`.
final class _RunPartCache: Sendable {
    private struct Entry {
        var runID: String
        var workflow: String?
        var storeName: String?
        var runDirectory: String
        var spillRoot: String
        var memoryWaitSeconds: Double?
        var bytes: [UInt8]
    }
    /// A few runs at once, newest last.
    private let entries = LockedValue<[Entry]>([])

    /// The run's part of `request`, encoded once per run.
    func runPart(of request: _PoolRequest) -> [UInt8] {
        let spec = request.spec
        if let known = entries.withLock({ entries in
            entries.last {
                $0.runID == spec.runID && $0.storeName == spec.storeName && $0.runDirectory == spec.runDirectory && $0.spillRoot == request.spillRoot
                    && $0.workflow == spec.workflow && $0.memoryWaitSeconds == spec.memoryWaitSeconds
            }?.bytes
        }) {
            return known
        }
        let bytes = request.runPart()
        entries.withLock { entries in
            entries.append(Entry(
                runID: spec.runID, workflow: spec.workflow, storeName: spec.storeName, runDirectory: spec.runDirectory, spillRoot: request.spillRoot,
                memoryWaitSeconds: spec.memoryWaitSeconds, bytes: bytes))
            if entries.count > 8 { entries.removeFirst() }
        }
        return bytes
    }

    /// Forgets run `runID` (it ended).
    func forget(runID: String) {
        entries.withLock { $0.removeAll { $0.runID == runID } }
    }
}

/// Decodes task requests, keeping the last run's part decoded: the requests of one run repeat
/// it byte for byte, and its strings are then not made again.
///
/// - Note: Not thread-safe; a worker's serving loop owns one.
struct _PoolRequestDecoder {
    private var runBytes: [UInt8] = []
    private var run: (runID: String, workflow: String?, storeName: String?, runDirectory: String, spillRoot: String, memoryWait: Double?)?

    mutating func decode(_ message: [UInt8]) throws(_WireError) -> _PoolRequest {
        var reader = _WireReader(message)
        let version = try reader.u8()
        guard version == wireVersion else { throw _WireError(description: "request of format version \(version), expected \(wireVersion)") }
        let runRange = try reader.bytesRange()
        if run == nil || !_sameBytes(message[runRange], runBytes) {
            var part = _WireReader(Array(message[runRange]))
            let runID = try part.string()
            let workflow = try part.optionalString()
            let storeName = try part.optionalString()
            let runDirectory = try part.string()
            let spillRoot = try part.string()
            let memoryWaitMilliseconds = try part.int()
            run = (runID, workflow, storeName, runDirectory, spillRoot, memoryWaitMilliseconds < 0 ? nil : Double(memoryWaitMilliseconds) / 1000)
            runBytes = Array(message[runRange])
        }
        let known = run!
        let taskName = try reader.string()
        let attempt = try reader.int()
        let resultPath = try reader.string()
        let prefault = try reader.u8() != 0
        let timeoutMicroseconds = try reader.int()
        let count = try reader.int()
        guard (0...1_000_000).contains(count) else { throw _WireError(description: "a request claims \(count) inputs") }
        var inputs: [WorkerSpec.Input] = []
        inputs.reserveCapacity(count)
        for _ in 0..<count {
            switch try reader.u8() {
            case 0: inputs.append(.object(try ObjectDescriptor(reading: &reader, storeNameLikely: known.storeName)))
            case 1: inputs.append(.file(try reader.string()))
            case let kind: throw _WireError(description: "unknown input kind \(kind)")
            }
        }
        var spec = WorkerSpec(
            runID: known.runID, taskName: taskName, attempt: attempt, storeName: known.storeName, inputs: inputs,
            runDirectory: known.runDirectory, resultPath: resultPath)
        spec.workflow = known.workflow
        spec.memoryWaitSeconds = known.memoryWait
        spec.timeoutSeconds = timeoutMicroseconds < 0 ? nil : Double(timeoutMicroseconds) / 1e6
        return _PoolRequest(spec: spec, spillRoot: known.spillRoot, prefaultStore: prefault)
    }
}

/// What a pool worker writes on fd 4 first, when it starts serving: a program that never
/// reaches the worker entry (it ran its own `main` instead) is told apart from one that crashed.
enum _PoolHello {
    static let message: [UInt8] = Array("dataflow-pool-worker/\(wireVersion)".utf8)
    static var wireMessage: [UInt8] {
        var writer = _WireWriter()
        for byte in message { writer.u8(byte) }
        return writer.finish()
    }
}

/// The parent asks a pool worker to let go of a store whose run ended (its mapping would keep
/// the segment's memory after the segment is removed). The worker replies with a `WorkerResult`
/// (`succeeded`), so the parent knows the mapping is gone when the reply comes.
struct _PoolDetachRequest: Equatable {
    /// The first byte of a detach message (a task request starts with the format version).
    static let tag: UInt8 = 0xD7
    var storeName: String

    func wireMessage() -> [UInt8] {
        var writer = _WireWriter()
        writer.u8(Self.tag)
        writer.string(storeName)
        return writer.finish()
    }

    /// The detach request `message` is, or nil if it is another message.
    init?(wire message: [UInt8]) throws(_WireError) {
        guard message.first == Self.tag else { return nil }
        var reader = _WireReader(message)
        _ = try reader.u8()
        storeName = try reader.string()
    }

    init(storeName: String) { self.storeName = storeName }
}

/// The parent asks a pool worker to attach a store before any task of a run on it comes (and to
/// prefault its mapping, if asked), so that the run does not pay for it
/// (`ProcessExecutor.attachWorkers(to:spillRoot:prefault:)`). The worker replies with a
/// `WorkerResult`: `succeeded`, or `error` with why.
struct _PoolAttachRequest: Equatable {
    /// The first byte of an attach message (a task request starts with the format version).
    static let tag: UInt8 = 0xA7
    var storeName: String
    var spillRoot: String
    var prefault: Bool

    func wireMessage() -> [UInt8] {
        var writer = _WireWriter()
        writer.u8(Self.tag)
        writer.string(storeName)
        writer.string(spillRoot)
        writer.u8(prefault ? 1 : 0)
        return writer.finish()
    }

    /// The attach request `message` is, or nil if it is another message.
    init?(wire message: [UInt8]) throws(_WireError) {
        guard message.first == Self.tag else { return nil }
        var reader = _WireReader(message)
        _ = try reader.u8()
        storeName = try reader.string()
        spillRoot = try reader.string()
        prefault = try reader.u8() != 0
    }

    init(storeName: String, spillRoot: String, prefault: Bool) {
        self.storeName = storeName
        self.spillRoot = spillRoot
        self.prefault = prefault
    }
}

/// The parent asks a pool worker for an empty reply at once, without running anything: the
/// bare round trip of the channel (`ProcessExecutor.measureRoundTrips(_:)`). The reply is a
/// `WorkerResult` (`succeeded`).
enum _PoolPingRequest {
    /// The first and only byte of a ping message (a task request starts with the format version).
    static let tag: UInt8 = 0x50
    static let wireMessage: [UInt8] = {
        var writer = _WireWriter()
        writer.u8(tag)
        return writer.finish()
    }()

    static func matches(_ message: [UInt8]) -> Bool { message.count == 1 && message[0] == tag }
}

extension WorkerResult {
    func wireMessage() -> [UInt8] {
        var writer = _WireWriter()
        writer.u8(wireVersion)
        writer.u8(Self.outcomeCodes.firstIndex(of: outcome).map(UInt8.init) ?? 0xFF)
        switch output {
        case nil: writer.u8(0)
        case .object(let descriptor)?:
            writer.u8(1)
            descriptor.write(to: &writer)
        case .file(let path)?:
            writer.u8(2)
            writer.string(path)
        }
        writer.optionalString(message)
        writer.int(bytesIn)
        writer.int(lostInput ?? -1)
        writer.u8(logWritten.map { $0 ? 2 : 1 } ?? 0)
        return writer.finish()
    }

    /// Outcomes on the wire, by their index here.
    private static let outcomeCodes: [AttemptOutcome] = [.succeeded, .failed, .preempted, .error, .cancelled, .skipped]

    /// `storeNameLikely`: the store the output is probably in (its name is then not made again).
    init(wire message: [UInt8], storeNameLikely: String? = nil) throws(_WireError) {
        var reader = _WireReader(message)
        let version = try reader.u8()
        guard version == wireVersion else { throw _WireError(description: "reply of format version \(version), expected \(wireVersion)") }
        let code = Int(try reader.u8())
        guard code < Self.outcomeCodes.count else { throw _WireError(description: "unknown outcome code \(code)") }
        let outcome = Self.outcomeCodes[code]
        let output: Output?
        switch try reader.u8() {
        case 0: output = nil
        case 1: output = .object(try ObjectDescriptor(reading: &reader, storeNameLikely: storeNameLikely))
        case 2: output = .file(try reader.string())
        case let kind: throw _WireError(description: "unknown output kind \(kind)")
        }
        let message = try reader.optionalString()
        let bytesIn = try reader.int()
        let lostInput = try reader.int()
        let logWritten: Bool?
        switch try reader.u8() {
        case 0: logWritten = nil
        case 1: logWritten = false
        case 2: logWritten = true
        case let flag: throw _WireError(description: "unknown log flag \(flag)")
        }
        self.init(outcome: outcome, output: output, message: message, bytesIn: bytesIn, lostInput: lostInput >= 0 ? lostInput : nil, logWritten: logWritten)
    }
}
