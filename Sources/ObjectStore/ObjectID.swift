/// A 128-bit object identifier, printed as 32 lowercase hex digits.
///
/// Ids are chosen by the producer: `ObjectID.random()` for fresh values, or `ObjectID(deriving:)`
/// to derive a stable id from a name (for example a run, task and output name), so that another
/// process can compute the same id without being told it.
///
/// - Note: `ObjectID` is a value type and is thread-safe.
public struct ObjectID: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    /// The high 64 bits.
    public let high: UInt64
    /// The low 64 bits.
    public let low: UInt64

    /// An id from its two halves.
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Parses 32 hex digits (either case). Returns `nil` for any other text.
    public init?(_ text: some StringProtocol) {
        let utf8 = Array(text.utf8)
        guard utf8.count == 32 else { return nil }
        var halves: [UInt64] = [0, 0]
        for (index, character) in utf8.enumerated() {
            guard let digit = Self.hexValue(character) else { return nil }
            halves[index / 16] = halves[index / 16] << 4 | UInt64(digit)
        }
        self.init(high: halves[0], low: halves[1])
    }

    /// A random id from the system's cryptographic random source.
    public static func random() -> ObjectID {
        var generator = SystemRandomNumberGenerator()
        return ObjectID(high: generator.next(), low: generator.next())
    }

    /// A stable id derived from `name` (two independent 64-bit FNV-1a hashes of its UTF-8 bytes,
    /// mixed). The same name gives the same id in every process and every version of this library.
    public init(deriving name: String) {
        var derivation = Derivation()
        derivation.append(name)
        self = derivation.id
    }

    /// Derives an id from a name given in pieces, without joining them: appending "a", "/" and
    /// "b" gives `ObjectID(deriving: "a/b")`.
    ///
    /// - Note: A value type; thread-safe.
    public struct Derivation: Sendable {
        private var first: UInt64 = 0xcbf2_9ce4_8422_2325
        private var second: UInt64 = 0x6c62_272e_07bb_0142

        public init() {}

        public mutating func append(_ piece: String) {
            var piece = piece
            piece.withUTF8 { bytes in
                for byte in bytes { append(byte: byte) }
            }
        }

        /// A number's decimal digits, as `append("\(number)")` would append them.
        public mutating func append(decimal number: Int) {
            if number < 0 || number >= 10 { append("\(number)"); return }
            append(byte: UInt8(ascii: "0") + UInt8(number))
        }

        @inline(__always) private mutating func append(byte: UInt8) {
            first = (first ^ UInt64(byte)) &* 0x0000_0100_0000_01b3  // wrapping: FNV arithmetic is mod 2^64
            second = (second ^ UInt64(byte)) &* 0x0000_0100_0000_0193
        }

        /// The id of everything appended so far.
        public var id: ObjectID {
            ObjectID(high: ObjectID.mix(first), low: ObjectID.mix(second ^ 0x9e37_79b9_7f4a_7c15))
        }
    }

    /// 32 lowercase hex digits.
    public var description: String {
        String(unsafeUninitializedCapacity: 32) { buffer in
            let digits: StaticString = "0123456789abcdef"
            for position in 0..<32 {
                let value = position < 16 ? high : low
                let nibble = Int((value >> UInt64(60 - 4 * (position & 15))) & 0xf)
                buffer[position] = digits.utf8Start[nibble]
            }
            return 32
        }
    }

    public static func < (lhs: ObjectID, rhs: ObjectID) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let id = ObjectID(text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "'\(text)' is not 32 hex digits")
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    /// Dictionaries and sets hash an id with one mixing step rather than SipHash over 16 bytes
    /// (ids are already well-mixed hashes or random numbers); `seed` keeps each table's order
    /// its own.
    public func _rawHashValue(seed: Int) -> Int {
        Int(truncatingIfNeeded: Self.mix(tableHash ^ UInt64(truncatingIfNeeded: seed)))
    }

    /// A 64-bit hash used to place the id in the shared object table; equal in every process.
    var tableHash: UInt64 { Self.mix(high ^ (low &* 0x9e37_79b9_7f4a_7c15)) }

    // splitmix64's finaliser: every input bit affects every output bit.
    fileprivate static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    private static func hexValue(_ character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return character - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return character - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return character - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
