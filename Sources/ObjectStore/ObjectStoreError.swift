import SystemPackage

/// The one error type of the ObjectStore module.
///
/// Every error names what is at fault: the object id, the store, the type names or the syscall
/// and its `Errno`. Switch on `code`; read `message` for people. New codes may be added, so
/// switches over `code` need a default.
///
/// - Note: `ObjectStoreError` is a value type and is thread-safe.
public struct ObjectStoreError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. A struct over a private enum, so that codes can be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Wrapped: String, Hashable, Sendable {
            case invalidName, invalidSize, invalidOption
            case storeNotFound, storeExists, incompatibleFormat, foreignOwner, storeCorrupted
            case tooManyProcesses, tooManyObjects, tooManyTypes
            case objectNotFound, objectExists, objectNotSealed, alreadySealed, objectSealed
            case staleDescriptor, typeMismatch, malformedValue, valueTooLarge
            case outOfMemory, systemCallFailed
        }
        private let wrapped: Wrapped
        private init(_ wrapped: Wrapped) { self.wrapped = wrapped }
        public var description: String { wrapped.rawValue }

        /// A store name is empty, too long, or has characters other than `[A-Za-z0-9._-]`.
        public static let invalidName = Code(.invalidName)
        /// A size is zero, negative, or larger than the store could ever hold.
        public static let invalidSize = Code(.invalidSize)
        /// A creation or attach option is out of range.
        public static let invalidOption = Code(.invalidOption)
        /// No store of that name exists.
        public static let storeNotFound = Code(.storeNotFound)
        /// A store of that name already exists.
        public static let storeExists = Code(.storeExists)
        /// The segment is not a store of this library, or of another format version.
        public static let incompatibleFormat = Code(.incompatibleFormat)
        /// The segment belongs to another user.
        public static let foreignOwner = Code(.foreignOwner)
        /// The segment's bookkeeping is damaged beyond repair (see `message`).
        public static let storeCorrupted = Code(.storeCorrupted)
        /// Every process slot of the store is taken by a live process.
        public static let tooManyProcesses = Code(.tooManyProcesses)
        /// The object table is full (see the store's `maxObjects`).
        public static let tooManyObjects = Code(.tooManyObjects)
        /// The store's table of type names is full.
        public static let tooManyTypes = Code(.tooManyTypes)
        /// No live object has that id.
        public static let objectNotFound = Code(.objectNotFound)
        /// A live object already has that id.
        public static let objectExists = Code(.objectExists)
        /// The object is still being created; only its creator may touch it.
        public static let objectNotSealed = Code(.objectNotSealed)
        /// `seal` was called on an object that is already sealed.
        public static let alreadySealed = Code(.alreadySealed)
        /// A write was attempted on a sealed (immutable) object.
        public static let objectSealed = Code(.objectSealed)
        /// A descriptor refers to an object that was deleted (its generation no longer matches).
        public static let staleDescriptor = Code(.staleDescriptor)
        /// The object was read as another type than it was stored as.
        public static let typeMismatch = Code(.typeMismatch)
        /// The object's bytes do not decode as the type they are tagged with.
        public static let malformedValue = Code(.malformedValue)
        /// A value is too large to encode (for example a tensor whose byte count overflows).
        public static let valueTooLarge = Code(.valueTooLarge)
        /// The allocation does not fit, even after everything evictable was considered.
        public static let outOfMemory = Code(.outOfMemory)
        /// A system call failed; `cause` says which and why.
        public static let systemCallFailed = Code(.systemCallFailed)
    }

    /// The syscall that failed and its `Errno`.
    public struct SystemCallFailure: Sendable, CustomStringConvertible {
        /// The C function, e.g. "shm_open".
        public var function: String
        /// The error it returned.
        public var errno: Errno
        public var description: String { "\(function): \(errno) (errno \(errno.rawValue))" }
    }

    /// Where the error was raised in this library.
    public struct SourceLocation: Sendable, CustomStringConvertible {
        public var file: String
        public var line: Int
        public var description: String { "\(file):\(line)" }
    }

    /// What kind of failure.
    public var code: Code
    /// A sentence for people that names the object, store, file or option at fault.
    public var message: String
    /// The store involved, when there is one.
    public var storeName: String?
    /// The object involved, when there is one.
    public var objectID: ObjectID?
    /// The failed syscall, for `.systemCallFailed` and for errors caused by one.
    public var cause: SystemCallFailure?
    /// For `.outOfMemory`: the sizes involved and the largest holders of memory.
    public var capacity: CapacityReport?
    /// For `.typeMismatch`: the type the object was stored as, and the requested type.
    public var storedType: String?
    public var requestedType: String?
    /// Where in this library the error was raised.
    public var location: SourceLocation

    init(
        _ code: Code, _ message: String, store: String? = nil, object: ObjectID? = nil,
        cause: SystemCallFailure? = nil, file: String = #fileID, line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.storeName = store
        self.objectID = object
        self.cause = cause
        self.location = SourceLocation(file: file, line: line)
    }

    /// An error for a failed syscall: `message` says what was being done, e.g. "creating store 'x'".
    static func syscall(
        _ function: String, _ errno: Errno, while doing: String, store: String? = nil,
        code: Code = .systemCallFailed, file: String = #fileID, line: Int = #line
    ) -> ObjectStoreError {
        ObjectStoreError(
            code, "\(doing): \(function) failed: \(errno)", store: store,
            cause: SystemCallFailure(function: function, errno: errno), file: file, line: line)
    }

    public var description: String {
        var text = "ObjectStoreError.\(code): \(message)"
        if let cause { text += " [\(cause)]" }
        return text
    }
}

extension ObjectStoreError {
    /// `.objectNotFound` for an object deleted while another component was restoring it.
    public static func deletedWhileRestoring(_ id: ObjectID, store: String) -> ObjectStoreError {
        ObjectStoreError(.objectNotFound, "object \(id) in store '\(store)' was deleted while it was being restored", store: store, object: id)
    }
}

/// Why an allocation did not fit: what was asked for, what is free, and who holds the memory.
public struct CapacityReport: Sendable, CustomStringConvertible {
    /// One large object and its state.
    public struct Holder: Sendable, CustomStringConvertible {
        public var id: ObjectID
        public var byteCount: Int
        public var state: ObjectState
        /// Number of processes holding a reference to it.
        public var holderProcessCount: Int
        /// Whether it is pinned (never evicted).
        public var isPinned: Bool
        public var description: String {
            "\(id) (\(byteCount) bytes, \(state)\(isPinned ? ", pinned" : ""), held by \(holderProcessCount) process(es))"
        }
    }
    /// Bytes the allocation needed, including the 64-byte block header.
    public var requestedBytes: Int
    /// Bytes free in the heap (possibly in several pieces).
    public var freeBytes: Int
    /// The largest single free block.
    public var largestFreeBlockBytes: Int
    /// The heap's capacity.
    public var capacityBytes: Int
    /// Bytes held by sealed objects that nobody references (could be evicted or spilled).
    public var evictableBytes: Int
    /// The largest objects, largest first (at most 5).
    public var largestHolders: [Holder]

    public var description: String {
        "requested \(requestedBytes) bytes; free \(freeBytes) (largest block \(largestFreeBlockBytes)) of "
            + "\(capacityBytes); evictable \(evictableBytes); largest holders: "
            + (largestHolders.isEmpty ? "none" : largestHolders.map(\.description).joined(separator: ", "))
    }
}

/// The lifecycle state of an object, as seen from outside the store.
public enum ObjectState: String, Sendable, Codable, CustomStringConvertible {
    /// Created, not yet sealed: writable by its creator only, invisible to `get`.
    case creating
    /// Sealed and referenced by at least one handle in some process.
    case sealedInUse = "sealed-in-use"
    /// Sealed and referenced by nobody: a candidate for eviction or spilling.
    case sealedIdle = "sealed-idle"
    /// Deleted while still referenced: freed when the last reference goes.
    case deletePending = "delete-pending"
    public var description: String { rawValue }
}
