import ObjectStore
import SystemPackage

/// The one error type of the Materialize module.
///
/// Every error names what is at fault: the spill file's path, the object id, the policy.
/// Switch on `code`; read `message` for people. New codes may be added.
///
/// - Note: A value type; thread-safe.
public struct MaterializeError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. A struct over a private enum, so that codes can be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Wrapped: String, Hashable, Sendable {
            case truncatedFile, corruptedFile, foreignFile, newerFormat, fileNotFound
            case ioFailed, compressionFailed, store, policyConflict, noRoom, invalidOption
        }
        private let wrapped: Wrapped
        private init(_ wrapped: Wrapped) { self.wrapped = wrapped }
        public var description: String { wrapped.rawValue }

        /// The file ends before its header or payload does.
        public static let truncatedFile = Code(.truncatedFile)
        /// A checksum does not match, a field is out of range, or the payload does not decompress.
        public static let corruptedFile = Code(.corruptedFile)
        /// The file is not a spill file (wrong magic).
        public static let foreignFile = Code(.foreignFile)
        /// The file was written by a newer version of this library.
        public static let newerFormat = Code(.newerFormat)
        /// No spill file exists for the object or at the path.
        public static let fileNotFound = Code(.fileNotFound)
        /// A file-system call failed; `cause` says which and why.
        public static let ioFailed = Code(.ioFailed)
        /// liblz4 reported an error.
        public static let compressionFailed = Code(.compressionFailed)
        /// The object store refused; `storeError` has its error.
        public static let store = Code(.store)
        /// The policy cannot do what the graph needs (e.g. `never` with a consumer that needs a file).
        public static let policyConflict = Code(.policyConflict)
        /// Memory stayed full until the deadline: `message` names what pins it.
        public static let noRoom = Code(.noRoom)
        /// An option is out of range.
        public static let invalidOption = Code(.invalidOption)
    }

    public var code: Code
    /// A sentence for people naming the file, object or policy at fault and what is wrong.
    public var message: String
    /// The file involved, when there is one.
    public var path: String?
    /// The object involved, when there is one.
    public var objectID: ObjectID?
    /// The failed syscall and its errno, for `.ioFailed`.
    public var cause: (function: String, errno: Errno)?
    /// The store's error, for `.store` and `.noRoom`.
    public var storeError: ObjectStoreError?

    init(_ code: Code, _ message: String, path: String? = nil, object: ObjectID? = nil) {
        self.code = code
        self.message = message
        self.path = path
        self.objectID = object
    }

    static func io(_ function: String, _ errno: Errno, path: String, while doing: String) -> MaterializeError {
        var error = MaterializeError(.ioFailed, "\(doing) '\(path)': \(function) failed: \(errno)", path: path)
        error.cause = (function, errno)
        return error
    }

    static func store(_ error: ObjectStoreError, while doing: String) -> MaterializeError {
        var wrapped = MaterializeError(.store, "\(doing): \(error.message)", object: error.objectID)
        wrapped.storeError = error
        return wrapped
    }

    /// The value this error was about is gone: its spill file is missing, truncated, damaged or
    /// not a spill file, or the object is neither in memory nor spilled. Where the value's
    /// producer can run again, the scheduler recomputes it (lineage) instead of failing.
    public var meansValueLost: Bool {
        switch code {
        case .truncatedFile, .corruptedFile, .foreignFile, .fileNotFound: true
        case .store: storeError?.code == .objectNotFound || storeError?.code == .staleDescriptor
        case .ioFailed: cause?.errno == .noSuchFileOrDirectory
        default: false
        }
    }

    public var description: String {
        var text = "MaterializeError.\(code): \(message)"
        if let cause { text += " [\(cause.function): \(cause.errno)]" }
        return text
    }
}
