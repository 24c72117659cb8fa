import ObjectStore

/// README, "The object store in 20 lines".
func objectStoreExample() throws {
    // Create a store (a /dev/shm segment, mode 0600); other processes attach by name.
    let store = try SharedObjectStore.create(named: "features", capacityBytes: 1 << 30)
    defer { try? SharedObjectStore.remove(named: "features") }

    // Produce a tensor in place: the closure writes straight into shared memory.
    let id = ObjectID(deriving: "run-1/normalize/out")
    let x = try store.makeTensor(id, shape: [1024, 256], of: Float.self) { scalars in
        for i in scalars.indices { scalars[i] = Float(i % 256) / 255 }
    }

    // Any process that attached reads it as a view of the same bytes: no copy.
    let view = try SharedObjectStore.attach(named: "features").get(id, as: Tensor<Float>.self)
    let mean = view.reduce(0, +) / Float(view.count)

    // Other values: bytes and String (copied), any Codable type (JSON, copied).
    struct Config: Codable, Sendable, StoreValue { var learningRate: Double }
    try store.put(Config(learningRate: 0.01), id: ObjectID(deriving: "config"))
    let config = try store.get(ObjectID(deriving: "config"), as: Config.self)
    _ = (x, mean, config)
}
