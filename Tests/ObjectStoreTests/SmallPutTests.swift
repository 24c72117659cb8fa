import ObjectStore
import Testing

/// `putSmall`: create, fill and seal in one visit to the lock (the path of small task outputs).
@Suite struct SmallPutTests {
    struct Refused: Error {}

    @Test func aSmallValueIsSealedAndReadableInOneStep() throws {
        try withStore { store in
            let id = ObjectID.random()
            let encoding = try Int(42).makeEncoding()
            let handle = try store.putSmall(id, byteCount: encoding.byteCount, typeTag: Int.typeTag, write: encoding.write)
            #expect(try store.get(id, as: Int.self) == 42)
            #expect(handle.byteCount == 8 && handle.typeTag == Int.typeTag)
            let statistics = try store.statistics()
            #expect(statistics.sealedInUseCount == 1 && statistics.creatingCount == 0)
            // An empty value takes a minimum block and reads back empty.
            let empty = try store.putSmall(.random(), byteCount: 0, typeTag: String.typeTag) { _ in }
            #expect(try empty.decode(as: String.self) == "")
        }
    }

    @Test func anUnheldSmallValueIsSealedIdleAndReadable() throws {
        try withStore { store in
            let id = ObjectID.random()
            let encoding = try Int(7).makeEncoding()
            try store.putSmallUnheld(id, byteCount: encoding.byteCount, typeTag: Int.typeTag, write: encoding.write)
            let statistics = try store.statistics()
            #expect(statistics.sealedIdleCount == 1 && statistics.sealedInUseCount == 0 && statistics.creatingCount == 0)
            #expect(try store.get(id, as: Int.self) == 7)
            try store.verifyIntegrity()
            #expect(throws: Refused.self) { try store.putSmallUnheld(.random(), byteCount: 8, typeTag: "bytes") { _ in throw Refused() } }
            expectStoreError(.objectExists) { try store.putSmallUnheld(id, byteCount: 8, typeTag: "bytes") { _ in } }
            #expect(try store.statistics().objectCount == 1)
        }
    }

    @Test func aFailingWriteLeavesNothingBehindAndADuplicateIsRefused() throws {
        try withStore { store in
            let id = ObjectID.random()
            #expect(throws: Refused.self) { try store.putSmall(id, byteCount: 16, typeTag: "bytes") { _ in throw Refused() } }
            #expect(!store.contains(id))
            #expect(try store.statistics().allocatedBytes == 0)
            _ = try store.putSmall(id, byteCount: 16, typeTag: "bytes") { _ in }
            expectStoreError(.objectExists) { try store.putSmall(id, byteCount: 16, typeTag: "bytes") { _ in } }
        }
    }
}

/// `capacityReport()`: what pins memory, on request (what `dataflow store stats` prints).
@Suite struct CapacityReportTests {
    @Test func theReportNamesTheLargestObjectsAndEvictableBytes() throws {
        try withStore(capacity: 8 << 20) { store in
            let big = ObjectID.random(), small = ObjectID.random()
            var builder = try store.create(big, byteCount: 1 << 20)
            let held = try builder.seal()
            var other = try store.create(small, byteCount: 4096)
            _ = try other.seal()  // released at once: sealed and idle
            let report = try store.capacityReport()
            #expect(report.requestedBytes == 0)
            #expect(report.largestHolders.map(\.id) == [big, small])
            #expect(report.largestHolders.first?.state == .sealedInUse && report.largestHolders.first?.holderProcessCount == 1)
            #expect(report.evictableBytes >= 4096 && report.evictableBytes < 1 << 20)
            withExtendedLifetime(held) {}
        }
    }
}
