/// A graph's edges by task, in two flat arrays (compressed sparse rows): the tasks that depend
/// on task `i` are `targets[offsets[i]..<offsets[i + 1]]`. For a map of a million tasks this is
/// two arrays instead of a million small ones (about 16 bytes a task instead of 64).
///
/// - Note: Immutable; thread-safe.
struct _Adjacency: Sendable {
    private let offsets: [Int]
    private let targets: [Int]

    /// The reverse of `dependencies` (by task: the tasks it waits for): by task, the tasks
    /// that wait for it, in increasing order.
    init(reversing dependencies: [[Int]]) {
        var counts = [Int](repeating: 0, count: dependencies.count + 1)
        for list in dependencies { for dependency in list { counts[dependency + 1] += 1 } }
        for index in 1..<counts.count { counts[index] += counts[index - 1] }
        var next = counts
        var targets = [Int](repeating: 0, count: counts.last ?? 0)
        for (task, list) in dependencies.enumerated() {
            for dependency in list {
                targets[next[dependency]] = task
                next[dependency] += 1
            }
        }
        self.offsets = counts
        self.targets = targets
    }

    /// The tasks that depend on `task`.
    subscript(task: Int) -> ArraySlice<Int> { targets[offsets[task]..<offsets[task + 1]] }
}
