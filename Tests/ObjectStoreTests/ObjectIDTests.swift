import ObjectStore
import Testing

@Suite struct ObjectIDTests {
    @Test func printsAndParsesThirtyTwoHexDigits() throws {
        let id = ObjectID(high: 0x0123_4567_89ab_cdef, low: 0x0fed_cba9_8765_4321)
        #expect(id.description == "0123456789abcdef0fedcba987654321")
        #expect(ObjectID(id.description) == id)
        #expect(ObjectID("0123456789ABCDEF0FEDCBA987654321") == id)
    }

    @Test(arguments: ["", "xyz", "0123456789abcdef0fedcba98765432", "0123456789abcdef0fedcba9876543210", "0123456789abcdeg0fedcba987654321"])
    func rejectsMalformedText(_ text: String) {
        #expect(ObjectID(text) == nil)
    }

    @Test func derivedIdsAreStableAndDistinct() {
        #expect(ObjectID(deriving: "run-1/normalize/out") == ObjectID(deriving: "run-1/normalize/out"))
        #expect(ObjectID(deriving: "run-1/normalize/out") != ObjectID(deriving: "run-1/normalize/out2"))
        // Pinned: derived ids must not change between versions of the library.
        #expect(ObjectID(deriving: "a").description == "02c0bdbf481420f8b2c2f3e393c68d9b")
        #expect(ObjectID(deriving: "run-1/normalize/12").description == "aefb38c6bdc095dd02dc3d249e3f491e")
        #expect(ObjectID.random() != ObjectID.random())
    }

    @Test func derivationInPiecesEqualsDerivingTheJoinedName() {
        for (runID, task, attempt) in [("run-1", "normalize", 12), ("r", "", 0), ("run-é", "t[3]", 7), ("x", "y", -5), ("", "", 100)] {
            var derivation = ObjectID.Derivation()
            derivation.append(runID)
            derivation.append("/")
            derivation.append(task)
            derivation.append("/")
            derivation.append(decimal: attempt)
            #expect(derivation.id == ObjectID(deriving: "\(runID)/\(task)/\(attempt)"))
        }
    }

    @Test func hashesAgreeWithEquality() {
        let ids = (0..<1000).map { ObjectID(deriving: "h-\($0)") }
        let set = Set(ids + ids)
        #expect(set.count == 1000)
        for id in ids { #expect(set.contains(id)) }
        #expect(!set.contains(ObjectID(deriving: "h-1000")))
        let copy = ObjectID(high: ids[3].high, low: ids[3].low)
        #expect(copy.hashValue == ids[3].hashValue)
    }

    @Test func codesAsItsHexString() throws {
        let id = ObjectID.random()
        let encoded = try JSONEncoder().encode([id])
        #expect(String(decoding: encoded, as: UTF8.self) == "[\"\(id)\"]")
        #expect(try JSONDecoder().decode([ObjectID].self, from: encoded) == [id])
    }
}

import Foundation
