/// How a new store is laid out.
///
/// - Note: A value type; thread-safe.
public struct StoreOptions: Sendable {
    /// The most objects live at once (plus those pending deletion). The object table gets at
    /// least twice as many 64-byte slots. Default: `defaultMaxObjects(forCapacity:)`.
    public var maxObjects: Int?
    /// Fault in every heap page at creation, so that the first writes into the store run at
    /// memcpy speed instead of paying a page fault (~2.5 µs) per fresh 4 KiB page.
    public var prefault: Bool

    public init(maxObjects: Int? = nil, prefault: Bool = false) {
        self.maxObjects = maxObjects
        self.prefault = prefault
    }

    /// The table holds at most this many objects (a 1 GiB table of slots).
    public static let maximumMaxObjects = 1 << 23

    /// One object per 16 KiB of capacity, at least 4,096 and at most `maximumMaxObjects`.
    public static func defaultMaxObjects(forCapacity capacityBytes: Int) -> Int {
        min(maximumMaxObjects, max(4096, capacityBytes / (16 * 1024)))
    }
}

/// How this process attaches to an existing store.
///
/// - Note: A value type; thread-safe.
public struct AttachOptions: Sendable {
    /// Fault in every heap page of this process's mapping now (`MADV_POPULATE_WRITE`) rather
    /// than on first touch.
    public var prefault: Bool

    public init(prefault: Bool = false) {
        self.prefault = prefault
    }
}
