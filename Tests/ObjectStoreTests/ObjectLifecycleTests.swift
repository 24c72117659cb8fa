import ObjectStore
import Testing

/// create → write in place → seal → get → release → delete, and every misuse of it.
@Suite struct ObjectLifecycleTests {
    @Test func writeInPlaceSealAndRead() throws {
        try withStore { store in
            let id = ObjectID.random()
            var builder = try store.create(id, byteCount: 1000)
            #expect(builder.byteCount == 1000)
            try builder.write(patternBytes(1000))
            #expect(!store.contains(id))  // invisible until sealed
            let sealed = try builder.seal()
            #expect(store.contains(id))
            let handle = try store.get(id)
            #expect(handle.copyBytes() == patternBytes(1000))
            #expect(handle.typeTag == "bytes")
            // Zero copy: every handle of the object points at the same bytes the producer wrote.
            let producerAddress = sealed.withUnsafeBytes { $0.baseAddress }
            #expect(handle.withUnsafeBytes { $0.baseAddress } == producerAddress)
            #expect(handle.withBytes { $0.byteCount } == 1000)
        }
    }

    @Test func statisticsFollowTheLifecycle() throws {
        try withStore { store in
            let id = ObjectID.random()
            var builder = try store.create(id, byteCount: 4096)
            var stats = try store.statistics()
            #expect(stats.creatingCount == 1 && stats.creatingBytes == 4096)
            var handle: ObjectHandle? = try builder.seal()
            stats = try store.statistics()
            #expect(stats.creatingCount == 0 && stats.sealedInUseCount == 1 && stats.sealedInUseBytes == 4096)
            let copy = handle
            handle = nil
            #expect(try store.statistics().sealedInUseCount == 1)  // the copy still holds the one reference
            _ = copy
            withExtendedLifetime(copy) {}
        }
        try withStore { store in
            let id = ObjectID.random()
            do {
                var builder = try store.create(id, byteCount: 4096)
                try builder.seal()
            }
            let stats = try store.statistics()
            #expect(stats.sealedIdleCount == 1 && stats.sealedIdleBytes == 4096 && stats.sealedInUseCount == 0)
            #expect(stats.allocatedBytes == 4096 + 64)
            #expect(stats.highWaterBytes >= stats.allocatedBytes)
            try store.delete(id)
            let after = try store.statistics()
            #expect(after.objectCount == 0 && after.allocatedBytes == 0 && after.highWaterBytes == 4096 + 64)
        }
    }

    @Test func unknownIdIsATypedError() throws {
        try withStore { store in
            let id = ObjectID.random()
            let error = expectStoreError(.objectNotFound) { try store.get(id) }
            #expect(error?.objectID == id)
            #expect(error?.message.contains(id.description) == true)
            expectStoreError(.objectNotFound) { try store.delete(id) }
        }
    }

    @Test func duplicateIdIsATypedError() throws {
        try withStore { store in
            let id = ObjectID.random()
            var builder = try store.create(id, byteCount: 10)
            expectStoreError(.objectExists) { try store.create(id, byteCount: 10) }
            try builder.seal()
            expectStoreError(.objectExists) { try store.create(id, byteCount: 10) }
        }
    }

    @Test func sealingTwiceIsATypedError() throws {
        try withStore { store in
            var builder = try store.create(.random(), byteCount: 10)
            try builder.seal()
            expectStoreError(.alreadySealed) { try builder.seal() }
        }
    }

    @Test func writingAfterSealIsATypedError() throws {
        try withStore { store in
            var builder = try store.create(.random(), byteCount: 10)
            try builder.write([1, 2, 3])
            try builder.seal()
            expectStoreError(.objectSealed) { try builder.write([4]) }
            expectStoreError(.objectSealed) { try builder.withUnsafeMutableBytes { _ in } }
            expectStoreError(.objectSealed) { try builder.withMutableBytes { _ in } }
        }
    }

    @Test func writingOutsideTheObjectIsATypedError() throws {
        try withStore { store in
            let builder = try store.create(.random(), byteCount: 10)
            expectStoreError(.invalidSize) { try builder.write(patternBytes(11)) }
            expectStoreError(.invalidSize) { try builder.write([1], atByteOffset: 10) }
            expectStoreError(.invalidSize) { try builder.write([1], atByteOffset: -1) }
        }
    }

    @Test(arguments: [0, -5])
    func zeroOrNegativeSizeIsATypedError(_ size: Int) throws {
        try withStore { store in
            expectStoreError(.invalidSize) { try store.create(.random(), byteCount: size) }
        }
    }

    @Test func oversizedObjectIsATypedError() throws {
        try withStore(capacity: 1 << 20) { store in
            let error = expectStoreError(.invalidSize) { try store.create(.random(), byteCount: 1 << 20) }
            #expect(error?.message.contains("capacity") == true)
            expectStoreError(.invalidSize) { try store.create(.random(), byteCount: Int.max) }
        }
    }

    @Test func getOfAnObjectBeingCreatedIsATypedError() throws {
        try withStore { store in
            let id = ObjectID.random()
            let builder = try store.create(id, byteCount: 10)
            expectStoreError(.objectNotSealed) { try store.get(id) }
            expectStoreError(.objectNotSealed) { try store.delete(id) }
            withExtendedLifetime(builder) {}
        }
    }

    @Test func droppedOrAbortedBuildersFreeTheirObject() throws {
        try withStore { store in
            let id = ObjectID.random()
            do { _ = try store.create(id, byteCount: 1000) }
            #expect(try store.statistics().objectCount == 0)
            let builder = try store.create(id, byteCount: 1000)  // the id is free again
            builder.abort()
            let stats = try store.statistics()
            #expect(stats.objectCount == 0 && stats.allocatedBytes == 0)
        }
    }

    @Test func deleteWaitsForTheLastReference() throws {
        try withStore { store in
            let id = ObjectID.random()
            var builder = try store.create(id, byteCount: 512)
            try builder.write(patternBytes(512))
            var handle: ObjectHandle? = try builder.seal()
            try store.delete(id)
            #expect(!store.contains(id))
            expectStoreError(.objectNotFound) { try store.get(id) }
            var stats = try store.statistics()
            #expect(stats.deletePendingCount == 1 && stats.deletePendingBytes == 512)
            #expect(handle?.copyBytes() == patternBytes(512))  // still readable through the handle
            // The id is free for a new object while the old one waits.
            var replacement = try store.create(id, byteCount: 8)
            try replacement.write(patternBytes(8, seed: 9))
            try replacement.seal()
            #expect(try store.get(id).copyBytes() == patternBytes(8, seed: 9))
            handle = nil
            stats = try store.statistics()
            #expect(stats.deletePendingCount == 0 && stats.objectCount == 1)
            try store.verifyIntegrity()
        }
    }

    @Test func descriptorsFindTheirObjectAndDetectReuse() throws {
        try withStore { store in
            let id = ObjectID.random()
            var builder = try store.create(id, byteCount: 64)
            let descriptor = builder.descriptor
            try builder.seal()
            let data = try JSONEncoder().encode(descriptor)
            let decoded = try JSONDecoder().decode(ObjectDescriptor.self, from: data)
            #expect(try store.get(decoded).id == id)
            try store.delete(id)
            var again = try store.create(id, byteCount: 64)
            try again.seal()
            let error = expectStoreError(.staleDescriptor) { try store.get(decoded) }
            #expect(error?.objectID == id)
            var foreign = decoded
            foreign.storeName = "another-store"
            expectStoreError(.invalidOption) { try store.get(foreign) }
        }
    }

    @Test func handlesWorkFromManyThreads() async throws {
        try await withStoreAsync { store in
            let ids = (0..<64).map { _ in ObjectID.random() }
            for (index, id) in ids.enumerated() {
                try store.put(patternBytes(100 + index, seed: index), id: id)
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<4 {
                    group.addTask {
                        for round in 0..<200 {
                            let index = (round * 7 + worker) % ids.count
                            let handle = try store.get(ids[index])
                            #expect(handle.byteCount == 100 + index)
                            if round % 50 == 0 {
                                let scratch = ObjectID.random()
                                try store.put([UInt8](repeating: UInt8(worker), count: 300), id: scratch)
                                try store.delete(scratch)
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let stats = try store.statistics()
            #expect(stats.sealedInUseCount == 0 && stats.sealedIdleCount == ids.count)
        }
    }
}

func withStoreAsync(capacity: Int = 4 << 20, label: String = #function, _ body: (SharedObjectStore) async throws -> Void) async throws {
    let name = uniqueStoreName(label)
    let store = try SharedObjectStore.create(named: name, capacityBytes: capacity)
    defer { try? SharedObjectStore.remove(named: name) }
    try await body(store)
    try store.verifyIntegrity()
}

import Foundation
