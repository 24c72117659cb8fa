/// What `SharedObjectStore.delete` deleted.
public struct DeletedObject: Sendable, Equatable {
    /// The object's size in bytes.
    public var byteCount: Int
    /// Its bytes were freed at once (nobody held it); otherwise they go with the last reference.
    public var freedNow: Bool
    /// `setHasFileCopy` had recorded a file copy of it: the caller removes that file.
    public var hadFileCopy: Bool
}
