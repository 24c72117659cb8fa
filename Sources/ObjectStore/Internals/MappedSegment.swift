import SystemPackage

/// Owns one process's mapping of a store segment and the descriptor behind it.
///
/// Created by `SharedObjectStore.create` / `attach`; unmapped and closed in `deinit`, which runs
/// only after every handle and builder of the store is gone (they keep the store alive).
/// Setup undoes its partial work on every error path.
///
/// - Note: Immutable after initialisation. Sharing it between threads is safe because all
///   reads and writes of segment state go through the segment's robust mutex, and payload bytes
///   are governed by the object lifecycle (written by the creator before seal, read after).
final class _MappedSegment: @unchecked Sendable {
    let name: String
    let systemName: String
    let fileDescriptor: Int32
    let base: UnsafeMutableRawPointer
    let byteCount: Int
    let view: _SegmentView

    private init(name: String, systemName: String, fileDescriptor: Int32, base: UnsafeMutableRawPointer, byteCount: Int, geometry: _Layout.Geometry) {
        self.name = name
        self.systemName = systemName
        self.fileDescriptor = fileDescriptor
        self.base = base
        self.byteCount = byteCount
        self.view = _SegmentView(base: base, geometry: geometry)
    }

    deinit {
        _Syscall.unmap(base, byteCount: byteCount)
        _Syscall.close(fileDescriptor)
    }

    /// The shm name of store `name`: "/dataflow.<name>" (a file /dev/shm/dataflow.<name>).
    static func systemName(for name: String) -> String { "/dataflow.\(name)" }

    /// Store names are 1–200 characters from [A-Za-z0-9._-], not starting with '.'.
    static func validate(name: String) throws(ObjectStoreError) {
        let allowed = name.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: ".")
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
        guard !name.isEmpty, name.utf8.count <= 200, allowed, !name.hasPrefix(".") else {
            throw ObjectStoreError(
                .invalidName,
                "invalid store name '\(name)': use 1-200 characters from [A-Za-z0-9._-], not starting with '.'",
                store: name)
        }
    }

    /// Creates, sizes, reserves and maps a new segment, and writes an empty store into it.
    /// Fails with `.storeExists` if the name is taken. On any failure nothing is left behind.
    static func create(name: String, geometry: _Layout.Geometry, maxObjects: Int, prefault: Bool) throws(ObjectStoreError) -> _MappedSegment {
        let systemName = systemName(for: name)
        let fd: Int32
        switch _Syscall.shmOpen(systemName, create: true, exclusive: true, mode: 0o600) {
        case .success(let value): fd = value
        case .failure(.fileExists):
            throw ObjectStoreError(.storeExists, "a store named '\(name)' already exists (/dev/shm\(systemName))", store: name)
        case .failure(let errno):
            throw .syscall("shm_open", errno, while: "creating store '\(name)'", store: name)
        }
        let size = geometry.segmentByteCount
        func fail(_ error: ObjectStoreError) -> ObjectStoreError {
            _Syscall.close(fd)
            _ = _Syscall.shmUnlink(systemName)
            return error
        }
        if case .failure(let errno) = _Syscall.truncate(fd, toByteCount: size) {
            throw fail(.syscall("ftruncate", errno, while: "sizing store '\(name)' to \(size) bytes", store: name))
        }
        // Reserve every page now: a full /dev/shm is an error here rather than a SIGBUS later.
        if case .failure(let errno) = _Syscall.reserve(fd, byteCount: size) {
            let code: ObjectStoreError.Code = errno == .noSpace ? .outOfMemory : .systemCallFailed
            throw fail(.syscall("posix_fallocate", errno, while: "reserving \(size) bytes of shared memory for store '\(name)'", store: name, code: code))
        }
        let base: UnsafeMutableRawPointer
        switch _Syscall.mapShared(fd, byteCount: size) {
        case .success(let value): base = value
        case .failure(let errno): throw fail(.syscall("mmap", errno, while: "mapping store '\(name)'", store: name))
        }
        let segment = _MappedSegment(name: name, systemName: systemName, fileDescriptor: fd, base: base, byteCount: size, geometry: geometry)
        let header = segment.view.header
        if case .failure(let errno) = _Syscall.initializeRobustMutex(at: segment.view.mutexAddress) {
            _ = _Syscall.shmUnlink(systemName)
            throw .syscall("pthread_mutex_init", errno, while: "initialising the lock of store '\(name)'", store: name)
        }
        header.setU64(_Layout.magicOffset, _Layout.magic)
        header.setU32(_Layout.versionOffset, _Layout.formatVersion)
        header.setU32(_Layout.ownerOffset, _Syscall.effectiveUserID())
        header.setU64(_Layout.segmentSizeOffset, UInt64(size))
        header.setU64(_Layout.heapCapacityOffset, UInt64(geometry.heapCapacity))
        header.setU64(_Layout.tableSlotCountOffset, UInt64(geometry.tableSlotCount))
        header.setU64(_Layout.maxObjectsOffset, UInt64(maxObjects))
        let instance = ObjectID.random()
        header.setU64(_Layout.instanceIDOffset, instance.high)
        header.setU64(_Layout.instanceIDOffset + 8, instance.low)
        _ = segment.view.typeIndex(named: "bytes")
        // Prefault before the heap's first block header exists: it writes zeros to every page.
        // The object table is probed at random slots: fault it in now (0.8% of the capacity),
        // so that lookups never pay for a fresh page.
        segment.prefaultMetadata()
        if prefault { segment.prefaultHeap(writingZeros: true) }
        segment.view.rebuildHeap(usedBlocks: [])
        header.setU64(_Layout.highWaterBlockBytesOffset, 0)
        // Publish last: attachers refuse a segment whose header is not complete.
        header.setU32(_Layout.publishedOffset, 1)
        return segment
    }

    /// Opens and maps an existing segment after checking that it is a store of this format,
    /// owned by this user. On any failure nothing is left open or mapped.
    static func attach(name: String, prefault: Bool) throws(ObjectStoreError) -> _MappedSegment {
        let systemName = systemName(for: name)
        let fd: Int32
        switch _Syscall.shmOpen(systemName, create: false, exclusive: false, mode: 0) {
        case .success(let value): fd = value
        case .failure(.noSuchFileOrDirectory):
            throw ObjectStoreError(.storeNotFound, "no store named '\(name)' exists (no /dev/shm\(systemName))", store: name)
        case .failure(.permissionDenied):
            throw ObjectStoreError(.foreignOwner, "store '\(name)' belongs to another user (/dev/shm\(systemName) is not readable)", store: name)
        case .failure(let errno):
            throw .syscall("shm_open", errno, while: "attaching store '\(name)'", store: name)
        }
        func fail(_ error: ObjectStoreError) -> ObjectStoreError {
            _Syscall.close(fd)
            return error
        }
        let status: (ownerUID: UInt32, mode: UInt32, byteCount: Int)
        switch _Syscall.fileStatus(fd) {
        case .success(let value): status = value
        case .failure(let errno): throw fail(.syscall("fstat", errno, while: "attaching store '\(name)'", store: name))
        }
        let me = _Syscall.effectiveUserID()
        guard status.ownerUID == me else {
            throw fail(ObjectStoreError(.foreignOwner, "store '\(name)' belongs to user \(status.ownerUID), not to this process's user \(me)", store: name))
        }
        guard status.byteCount >= _Layout.objectTableOffset else {
            throw fail(ObjectStoreError(.incompatibleFormat, "/dev/shm\(systemName) is \(status.byteCount) bytes: too small to be a store", store: name))
        }
        // Read the header through a mapping of its first page to learn the geometry.
        let probe: UnsafeMutableRawPointer
        switch _Syscall.mapShared(fd, byteCount: _Layout.headerByteCount) {
        case .success(let value): probe = value
        case .failure(let errno): throw fail(.syscall("mmap", errno, while: "reading the header of store '\(name)'", store: name))
        }
        let fields = _Fields(raw: probe)
        let magic = fields.u64(_Layout.magicOffset)
        let version = fields.u32(_Layout.versionOffset)
        let published = fields.u32(_Layout.publishedOffset)
        let owner = fields.u32(_Layout.ownerOffset)
        let size = Int(fields.u64(_Layout.segmentSizeOffset))
        let geometry = _Layout.Geometry(heapCapacity: Int(fields.u64(_Layout.heapCapacityOffset)), tableSlotCount: Int(fields.u64(_Layout.tableSlotCountOffset)))
        _Syscall.unmap(probe, byteCount: _Layout.headerByteCount)
        guard magic == _Layout.magic else {
            throw fail(ObjectStoreError(.incompatibleFormat, "/dev/shm\(systemName) is not a swift-dataflow store (bad magic)", store: name))
        }
        guard version == _Layout.formatVersion else {
            throw fail(ObjectStoreError(.incompatibleFormat, "store '\(name)' has format version \(version); this library reads version \(_Layout.formatVersion)", store: name))
        }
        guard published == 1 else {
            throw fail(ObjectStoreError(.incompatibleFormat, "store '\(name)' was never completely created (its creator died during creation); remove it", store: name))
        }
        guard owner == me else {
            throw fail(ObjectStoreError(.foreignOwner, "store '\(name)' was created by user \(owner), not by this process's user \(me)", store: name))
        }
        guard size == status.byteCount, size == geometry.segmentByteCount, geometry.tableSlotCount.nonzeroBitCount == 1 else {
            throw fail(ObjectStoreError(.storeCorrupted, "store '\(name)' header disagrees with its size (\(size) vs \(status.byteCount) bytes)", store: name))
        }
        let base: UnsafeMutableRawPointer
        switch _Syscall.mapShared(fd, byteCount: size) {
        case .success(let value): base = value
        case .failure(let errno): throw fail(.syscall("mmap", errno, while: "mapping store '\(name)'", store: name))
        }
        let segment = _MappedSegment(name: name, systemName: systemName, fileDescriptor: fd, base: base, byteCount: size, geometry: geometry)
        if prefault { segment.prefaultHeap(writingZeros: false) }
        return segment
    }

    /// Faults in the pages before the heap (header, type, process and object tables) with
    /// `MADV_POPULATE_WRITE`, which leaves their contents alone (best effort: without it, pages
    /// fault in on first use as usual).
    func prefaultMetadata() {
        _ = _Syscall.populateWritable(base, byteCount: view.geometry.heapOffset)
    }

    /// Faults in every heap page of this process's mapping. The creator writes zeros (the pages
    /// are new and zero anyway), which is the fastest way; an attacher must not write, and uses
    /// `MADV_POPULATE_WRITE`, falling back to reading one byte per page.
    func prefaultHeap(writingZeros: Bool) {
        let start = base + view.geometry.heapOffset
        let count = view.geometry.heapRegionByteCount
        if writingZeros {
            var offset = 0
            while offset < count {
                start.storeBytes(of: 0, toByteOffset: offset, as: UInt8.self)
                offset += _Layout.pageByteCount
            }
        } else if !_Syscall.populateWritable(start, byteCount: count) {
            var sum: UInt8 = 0
            var offset = 0
            while offset < count {
                sum &+= start.load(fromByteOffset: offset, as: UInt8.self)
                offset += _Layout.pageByteCount
            }
            _ = sum
        }
    }
}
