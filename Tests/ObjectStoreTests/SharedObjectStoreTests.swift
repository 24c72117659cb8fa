import Foundation
import ObjectStore
import Testing

/// Creating, attaching and removing stores; every bad input is a typed error.
@Suite struct SharedObjectStoreTests {
    @Test func createAttachAndRemove() throws {
        let name = uniqueStoreName()
        let store = try SharedObjectStore.create(named: name, capacityBytes: 1 << 20)
        defer { try? SharedObjectStore.remove(named: name) }
        #expect(store.capacityBytes == 1 << 20)
        #expect(SharedObjectStore.exists(named: name))
        // One mapping per process: attaching again gives the same instance.
        #expect(try SharedObjectStore.attach(named: name) === store)
        // Each store gets its own instance id.
        try withStore { other in #expect(other.instanceID != store.instanceID) }
        let attributes = try FileManager.default.attributesOfItem(atPath: "/dev/shm/dataflow.\(name)")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        try SharedObjectStore.remove(named: name)
        #expect(!SharedObjectStore.exists(named: name))
        expectStoreError(.storeNotFound) { try SharedObjectStore.remove(named: name) }
    }

    @Test(arguments: ["", "has space", "slash/inside", ".hidden", String(repeating: "x", count: 201), "naïve"])
    func invalidNamesAreRejected(_ name: String) {
        expectStoreError(.invalidName) { try SharedObjectStore.create(named: name, capacityBytes: 1 << 20) }
        expectStoreError(.invalidName) { try SharedObjectStore.attach(named: name) }
    }

    @Test func attachingAMissingStoreFails() {
        let error = expectStoreError(.storeNotFound) { try SharedObjectStore.attach(named: uniqueStoreName()) }
        #expect(error?.message.contains("no store named") == true)
    }

    @Test func creatingTwiceFails() throws {
        try withStore { store in
            expectStoreError(.storeExists) { try SharedObjectStore.create(named: store.name, capacityBytes: 1 << 20) }
        }
    }

    @Test(arguments: [0, -1, 1024, 65535])
    func tooSmallCapacityIsRejected(_ capacity: Int) {
        expectStoreError(.invalidSize) { try SharedObjectStore.create(named: uniqueStoreName(), capacityBytes: capacity) }
    }

    @Test func invalidMaxObjectsIsRejected() {
        expectStoreError(.invalidOption) {
            try SharedObjectStore.create(named: uniqueStoreName(), capacityBytes: 1 << 20, options: StoreOptions(maxObjects: 0))
        }
    }

    /// Attaching a segment whose header is damaged: another format version, or not a store.
    @Test func attachingAnotherFormatFails() throws {
        let name = uniqueStoreName()
        do { _ = try SharedObjectStore.create(named: name, capacityBytes: 1 << 20) }  // released at once: not mapped here any more
        defer { try? SharedObjectStore.remove(named: name) }
        let path = "/dev/shm/dataflow.\(name)"
        let file = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try file.seek(toOffset: 8)
        try file.write(contentsOf: [99, 0, 0, 0])  // format version 99
        let error = expectStoreError(.incompatibleFormat) { try SharedObjectStore.attach(named: name) }
        #expect(error?.message.contains("format version 99") == true)
        try file.seek(toOffset: 0)
        try file.write(contentsOf: [UInt8](repeating: 0x41, count: 8))  // not our magic
        expectStoreError(.incompatibleFormat) { try SharedObjectStore.attach(named: name) }
        try file.close()
        // A file in /dev/shm that is far too small to be a store.
        let tiny = uniqueStoreName()
        _ = FileManager.default.createFile(atPath: "/dev/shm/dataflow.\(tiny)", contents: Data([1, 2, 3]), attributes: [.posixPermissions: 0o600])
        defer { try? SharedObjectStore.remove(named: tiny) }
        expectStoreError(.incompatibleFormat) { try SharedObjectStore.attach(named: tiny) }
    }

    /// A store made by another user is refused (checked by owner, even for root, who could open it).
    @Test func attachingAnotherUsersStoreFails() throws {
        let name = uniqueStoreName()
        do { _ = try SharedObjectStore.create(named: name, capacityBytes: 1 << 20) }
        defer { try? SharedObjectStore.remove(named: name) }
        let path = "/dev/shm/dataflow.\(name)"
        guard chown(path, 65534, 65534) == 0 else {
            // An unprivileged test user cannot give files away; then the check cannot be staged.
            #expect(getuid() != 0, "chown failed as root")
            return
        }
        let error = expectStoreError(.foreignOwner) { try SharedObjectStore.attach(named: name) }
        #expect(error?.message.contains("65534") == true)
    }

    @Test func prefaultedStoreWorks() throws {
        try withStore(capacity: 8 << 20, options: StoreOptions(prefault: true)) { store in
            var builder = try store.create(.random(), byteCount: 6 << 20)
            try builder.write(patternBytes(100))
            try builder.seal()
            #expect(try store.statistics().sealedInUseCount == 0)  // the seal's handle was dropped
        }
    }
}
