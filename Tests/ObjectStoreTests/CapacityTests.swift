import Foundation
import ObjectStore
import Testing

/// Running out of room: the report, eviction, coalescing, long churn, many objects.
@Suite struct CapacityTests {
    @Test func outOfMemoryReportsSizesAndLargestHolders() throws {
        try withStore(capacity: 1 << 20) { store in
            let big = ObjectID.random()
            var builder = try store.create(big, byteCount: 600 * 1024)
            let held = try builder.seal()
            let idle = ObjectID.random()
            try store.put(patternBytes(200 * 1024), id: idle)
            let error = expectStoreError(.outOfMemory) { try store.create(.random(), byteCount: 400 * 1024) }
            let report = try #require(error?.capacity)
            #expect(report.requestedBytes == 400 * 1024 + 64)
            #expect(report.capacityBytes == 1 << 20)
            #expect(report.freeBytes == (1 << 20) - (600 * 1024 + 64) - (200 * 1024 + 64))
            #expect(report.largestFreeBlockBytes == report.freeBytes)
            #expect(report.evictableBytes == 200 * 1024 + 64)
            #expect(report.largestHolders.map(\.id) == [big, idle])
            #expect(report.largestHolders.first?.state == .sealedInUse)
            #expect(report.largestHolders.last?.state == .sealedIdle)
            #expect(error?.message.contains(big.description) == true)
            withExtendedLifetime(held) {}
        }
    }

    @Test func evictionCandidatesAreLeastRecentlyUsedFirst() throws {
        try withStore(capacity: 1 << 20) { store in
            let ids = (0..<4).map { ObjectID(deriving: "lru-\($0)") }
            for id in ids { try store.put(patternBytes(200 * 1024), id: id) }
            _ = try store.get(ids[0])  // now the most recently used
            let pinned = try store.get(ids[2])  // referenced: never a candidate
            #expect(try store.evictionCandidates(toFit: 100).isEmpty)  // fits already
            // ids[1] alone would free enough bytes, but not next to the free tail (pinned ids[2]
            // sits between), so the next coldest, ids[3], is needed too.
            let candidates = try store.evictionCandidates(toFit: 400 * 1024)
            #expect(candidates.map(\.id) == [ids[1], ids[3]])
            #expect(candidates.allSatisfy { $0.typeTag == "bytes" && $0.byteCount == 200 * 1024 })
            #expect(try store.evict(candidates.map(\.id) + [ids[2]]) == [ids[1], ids[3]])  // the pinned one is skipped
            var builder = try store.create(.random(), byteCount: 400 * 1024)
            try builder.seal()
            withExtendedLifetime(pinned) {}
        }
    }

    @Test func createCanEvictLeastRecentlyUsedObjects() throws {
        try withStore(capacity: 1 << 20) { store in
            let ids = (0..<4).map { ObjectID(deriving: "evict-\($0)") }
            for id in ids { try store.put(patternBytes(200 * 1024), id: id) }
            _ = try store.get(ids[0])
            var builder = try store.create(.random(), byteCount: 500 * 1024, eviction: .leastRecentlyUsed)
            try builder.seal()
            #expect(store.contains(ids[0]))
            #expect(!store.contains(ids[1]))
        }
    }

    @Test func pinnedObjectsAreNeverEvicted() throws {
        try withStore(capacity: 1 << 20) { store in
            let ids = (0..<4).map { ObjectID(deriving: "pin-\($0)") }
            for id in ids { try store.put(patternBytes(200 * 1024), id: id) }
            try store.setPinned(ids[0], true)
            #expect(store.isPinned(ids[0]) && !store.isPinned(ids[1]))
            #expect(try store.idleObjectsLeastRecentlyUsedFirst().map(\.id) == Array(ids[1...]))
            #expect(try store.evict([ids[0]]).isEmpty)
            var builder = try store.create(.random(), byteCount: 700 * 1024, eviction: .leastRecentlyUsed)
            let big = try builder.seal()  // held: in use, not evictable
            #expect(store.contains(ids[0]))
            let error = expectStoreError(.outOfMemory) { try store.create(.random(), byteCount: 300 * 1024, eviction: .leastRecentlyUsed) }
            #expect(error?.capacity?.largestHolders.contains { $0.id == ids[0] && $0.isPinned } == true)
            #expect(error?.capacity?.evictableBytes == 0)
            try store.setPinned(ids[0], false)
            #expect(try store.evict([ids[0]]) == [ids[0]])
            expectStoreError(.objectNotFound) { try store.setPinned(ids[0], true) }
            withExtendedLifetime(big) {}
        }
    }

    @Test func freedNeighboursCoalesce() throws {
        try withStore(capacity: 1 << 20) { store in
            let ids = (0..<3).map { ObjectID(deriving: "n-\($0)") }
            for id in ids { try store.put(patternBytes(300 * 1024), id: id) }
            try store.delete(ids[0])
            try store.delete(ids[2])
            #expect(try store.statistics().largestFreeBlockBytes < 700 * 1024)
            try store.delete(ids[1])
            let stats = try store.statistics()
            #expect(stats.largestFreeBlockBytes == 1 << 20)
            #expect(stats.freeBytes == 1 << 20)
            // The whole capacity is one block again: an object of all of it fits.
            var builder = try store.create(.random(), byteCount: (1 << 20) - 64)
            try builder.seal()
        }
    }

    /// Many rounds of mixed sizes, deletes in random order, handles kept across rounds: the
    /// bookkeeping stays exact and ends at zero with no byte lost.
    @Test func longChurnEndsWithTheAccountingAtZero() throws {
        try withStore(capacity: 16 << 20, options: StoreOptions(maxObjects: 20_000)) { store in
            var generator = SeededGenerator(seed: 42)
            var live: [ObjectID: Int] = [:]
            var handles: [ObjectHandle] = []
            let rounds = ProcessInfo.processInfo.environment["DATAFLOW_LONG_TESTS"] == nil ? 20_000 : 400_000
            for round in 0..<rounds {
                let roll = Int.random(in: 0..<100, using: &generator)
                if roll < 55 || live.isEmpty {
                    let size: Int
                    switch Int.random(in: 0..<10, using: &generator) {
                    case 0: size = Int.random(in: 64 * 1024...512 * 1024, using: &generator)
                    case 1...3: size = Int.random(in: 1024...16 * 1024, using: &generator)
                    default: size = Int.random(in: 1...512, using: &generator)
                    }
                    let id = ObjectID(high: UInt64(round), low: generator.next())
                    do {
                        var builder = try store.create(id, byteCount: size, eviction: roll < 5 ? .leastRecentlyUsed : .none)
                        try builder.withUnsafeMutableBytes { $0.storeBytes(of: UInt8(truncatingIfNeeded: size), toByteOffset: 0, as: UInt8.self) }
                        if Int.random(in: 0..<4, using: &generator) == 0 {
                            builder.abort()
                            continue
                        }
                        let handle = try builder.seal()
                        if Int.random(in: 0..<10, using: &generator) == 0 { handles.append(handle) }
                        live[id] = size
                    } catch let error as ObjectStoreError where error.code == .outOfMemory {
                        continue
                    }
                } else if roll < 95 {
                    let id = live.keys.randomElement(using: &generator)!
                    if store.contains(id) {
                        let handle = try store.get(id)
                        #expect(handle.byteCount == live[id])
                        #expect(handle.withUnsafeBytes { $0[0] } == UInt8(truncatingIfNeeded: live[id]!))
                        try store.delete(id)
                    }
                    live[id] = nil
                } else if !handles.isEmpty {
                    handles.remove(at: Int.random(in: 0..<handles.count, using: &generator))
                }
                if round % 2_000 == 0 { try store.verifyIntegrity() }
            }
            handles.removeAll()
            for id in live.keys where store.contains(id) { try store.delete(id) }
            try store.verifyIntegrity()
            let stats = try store.statistics()
            #expect(stats.objectCount == 0)
            #expect(stats.allocatedBytes == 0)
            #expect(stats.freeBytes == 16 << 20)
            #expect(stats.largestFreeBlockBytes == 16 << 20)
        }
    }

    @Test func tableFullIsATypedError() throws {
        try withStore(capacity: 1 << 20, options: StoreOptions(maxObjects: 10)) { store in
            for index in 0..<10 { try store.put([UInt8(index)], id: ObjectID(deriving: "full-\(index)")) }
            let error = expectStoreError(.tooManyObjects) { try store.put([1], id: .random()) }
            #expect(error?.message.contains("maxObjects") == true)
        }
    }

    /// One million small objects live at once.
    @Test func oneMillionSmallObjectsLiveAtOnce() throws {
        let count = 1_000_000
        try withStore(capacity: count * 128 + (1 << 20), options: StoreOptions(maxObjects: count)) { store in
            for index in 0..<count {
                var builder = try store.create(ObjectID(high: 7, low: UInt64(index)), byteCount: 16)
                try builder.withUnsafeMutableBytes { $0.storeBytes(of: UInt64(index), as: UInt64.self) }
                try builder.seal()
            }
            let stats = try store.statistics()
            #expect(stats.sealedIdleCount == count)
            for index in stride(from: 0, to: count, by: 9_973) {
                let handle = try store.get(ObjectID(high: 7, low: UInt64(index)))
                #expect(handle.withUnsafeBytes { $0.load(as: UInt64.self) } == UInt64(index))
            }
            try store.verifyIntegrity()
        }
    }
}

/// A small deterministic generator (xorshift64*), so that a failing churn can be replayed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9e37_79b9_7f4a_7c15 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_f491_4f6c_dd1d
    }
}
