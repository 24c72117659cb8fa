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
