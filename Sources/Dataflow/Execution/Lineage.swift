import Foundation
import Materialize
import ObjectStore

/// What made a task's result: recorded in the run log with every task that succeeded or was
/// reused, and compared by `RunOptions.resume` to tell whether a kept result is still current.
///
/// A result is current when the task's definition (name, `TaskOptions.version`, `parameters`,
/// the content of its `fileDependencies`, a shell task's command, the output type) and its
/// inputs are what they were when the result was made. An input is compared by its *token*: the
/// content hash (XXH3-64) of its bytes when a file of it was written as it was made (a kept or
/// exchange file: the hash comes free with the file), else its producer's `key` (the same
/// task, definition and inputs make the same value).
///
/// - Note: A value type; thread-safe.
public struct TaskLineage: Codable, Sendable, Equatable {
    /// XXH3-64 of `definition` and `inputs`: the same key, the same value.
    public var key: UInt64
    /// What a consumer records for this value (see the type's summary): its content hash, or
    /// `key` when no file of it was written as it was made.
    public var token: UInt64
    /// XXH3-64 of the task's definition (see the type's summary).
    public var definition: UInt64
    /// XXH3-64 of its parameters (sorted `name=value` lines); nil when it has none.
    public var parameters: UInt64?
    /// The tokens of its inputs, in order.
    public var inputs: [UInt64]
    /// `TaskOptions.version` (nil when empty).
    public var version: String?
    /// Its file dependencies as `path=<content hash>` (`path=missing` for an unreadable one).
    public var files: [String]?
    /// The file its policy kept its value in (`<run>/values/...`), if any: what a resumed run
    /// restores instead of running it.
    public var keptFile: String?
    /// For a reused task, the run whose result it reused.
    public var fromRun: String?

    public init(
        key: UInt64, token: UInt64, definition: UInt64, parameters: UInt64? = nil, inputs: [UInt64], version: String? = nil,
        files: [String]? = nil, keptFile: String? = nil, fromRun: String? = nil
    ) {
        self.key = key
        self.token = token
        self.definition = definition
        self.parameters = parameters
        self.inputs = inputs
        self.version = version
        self.files = files
        self.keptFile = keptFile
        self.fromRun = fromRun
    }

    // In JSON the hashes are strings of 16 hex digits; `token` is left out when it is `key`.
    private enum CodingKeys: String, CodingKey { case key, token, definition, parameters, inputs, version, files, keptFile, fromRun }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        func hash(_ text: String, _ key: CodingKeys) throws -> UInt64 {
            guard let value = ContentHash.parse(hex: text) else {
                throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "not 16 hex digits: \(text)")
            }
            return value
        }
        key = try hash(try container.decode(String.self, forKey: .key), .key)
        token = try container.decodeIfPresent(String.self, forKey: .token).map { try hash($0, .token) } ?? key
        definition = try container.decodeIfPresent(String.self, forKey: .definition).map { try hash($0, .definition) } ?? key  // left out when it is `key`
        parameters = try container.decodeIfPresent(String.self, forKey: .parameters).map { try hash($0, .parameters) }
        inputs = try (try container.decodeIfPresent([String].self, forKey: .inputs) ?? []).map { try hash($0, .inputs) }
        version = try container.decodeIfPresent(String.self, forKey: .version)
        files = try container.decodeIfPresent([String].self, forKey: .files)
        keptFile = try container.decodeIfPresent(String.self, forKey: .keptFile)
        fromRun = try container.decodeIfPresent(String.self, forKey: .fromRun)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(ContentHash.hex(key), forKey: .key)
        if token != key { try container.encode(ContentHash.hex(token), forKey: .token) }
        try container.encode(ContentHash.hex(definition), forKey: .definition)
        try container.encodeIfPresent(parameters.map(ContentHash.hex), forKey: .parameters)
        try container.encode(inputs.map(ContentHash.hex), forKey: .inputs)
        try container.encodeIfPresent(version, forKey: .version)
        try container.encodeIfPresent(files, forKey: .files)
        try container.encodeIfPresent(keptFile, forKey: .keptFile)
        try container.encodeIfPresent(fromRun, forKey: .fromRun)
    }
}

/// A task's definition, hashed once per run (outside the scheduler's lock) with a chain of
/// seeded XXH3 calls (no string is built for a task without version, parameters or files).
///
/// - Note: A value type; thread-safe.
struct _TaskDefinition: Sendable {
    var hash: UInt64
    var version: String
    var parametersHash: UInt64?
    var files: [String]

    init(_ node: _TaskNode) {
        version = node.options.version
        let parameters = node.options.parameters
        parametersHash = parameters.isEmpty
            ? nil : ContentHash.of(parameters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)\n" }.joined())
        let fileDependencies = node.options.fileDependencies
        files = fileDependencies.isEmpty ? [] : fileDependencies.map { path in
            "\(path)=\(ContentHash.ofFile(at: path).map(ContentHash.hex) ?? "missing")"
        }
        var hash = ContentHash.of(node.name, seed: ContentHash.of(node.outputTypeTag, seed: 0x6461_7461_666c_6f77))  // "dataflow"
        if !version.isEmpty { hash = ContentHash.of(version, seed: hash ^ 1) }
        if let parametersHash { hash = ContentHash.of(words: [hash, 2, parametersHash]) }
        for file in files { hash = ContentHash.of(file, seed: hash ^ 3) }
        if let command = node.command { hash = ContentHash.of(command, seed: hash ^ 4) }
        self.hash = hash
    }

    /// The lineage of a value made now from inputs with these tokens.
    @inline(__always)
    func lineage(inputTokens: [UInt64], contentHash: UInt64?, keptFile: String?) -> TaskLineage {
        let key = inputTokens.isEmpty ? hash : ContentHash.of(words: inputTokens, seed: hash)
        return TaskLineage(
            key: key, token: contentHash ?? key, definition: hash, parameters: parametersHash, inputs: inputTokens,
            version: version.isEmpty ? nil : version, files: files.isEmpty ? nil : files, keptFile: keptFile)
    }
}
