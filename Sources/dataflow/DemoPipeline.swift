import Dataflow
import Foundation
import ObjectStore

/// The demo's machine-learning pipeline: plain Swift functions, wired into a `Workflow` by
/// `DemoPipeline.makeWorkflow`. Every tensor is written in place in the run's store
/// (`TaskContext.current!.makeTensor`) and read by the next task as a view: no copies between
/// tasks. The numerics are ordinary vectorisable loops over the tensors' memory.
///
///     features ──┬──────────────► normalize ──┬──► fit ──► evaluate
///                └─► targets ─────────────────┴───────────┘
enum DemoPipeline {
    /// Shape of the synthetic problem.
    struct Settings: Sendable {
        var rows: Int
        var features: Int
        var epochs: Int
        var batchSize: Int = 512
        var learningRate: Float = 0.05
        var seed: UInt64
        /// The first `trainFraction` of the rows train the model; the rest test it.
        var trainFraction: Double = 0.8

        /// Rows so that features and targets together take about `bytes` bytes.
        static func rows(forBytes bytes: Int, features: Int) -> Int {
            max(16, bytes / (MemoryLayout<Float>.stride * (features + 1)))
        }
        var trainRows: Int { max(1, Int(Double(rows) * trainFraction)) }

        /// The workflow's name, which carries the settings: a worker process rebuilds the same
        /// workflow from it (`DemoPipeline.make(named:)`).
        var workflowName: String { "demo-r\(rows)-f\(features)-e\(epochs)-s\(seed)" }
    }

    /// The demo workflow a name made by `Settings.workflowName` stands for (for worker processes).
    static func make(named name: String) -> Workflow? {
        let parts = name.split(separator: "-").map(String.init)
        guard parts.count == 5, parts[0] == "demo", parts[1].hasPrefix("r"), parts[2].hasPrefix("f"), parts[3].hasPrefix("e"), parts[4].hasPrefix("s"),
            let rows = Int(parts[1].dropFirst()), let features = Int(parts[2].dropFirst()), let epochs = Int(parts[3].dropFirst()),
            let seed = UInt64(parts[4].dropFirst())
        else { return nil }
        return makeWorkflow(Settings(rows: rows, features: features, epochs: epochs, seed: seed)).0
    }

    /// The fitted model: weights on the normalized features, a bias, and the training loss per epoch.
    struct LinearModel: Codable, Sendable, StoreValue {
        var weights: [Float]
        var bias: Float
        var epochLosses: [Double]
        var learningRate: Float
        var batchSize: Int
    }

    /// What `evaluate` returns (the run's result, written to `values/evaluate.dfspill`).
    struct Evaluation: Codable, Sendable, StoreValue {
        var trainRows: Int
        var testRows: Int
        var trainMSE: Double
        var trainR2: Double
        var testMSE: Double
        var testR2: Double
        var model: LinearModel
    }

    /// Column means and scales of the synthetic features (so that normalizing matters).
    static func columnMean(_ column: Int) -> Float { Float(column % 7) * 3 - 9 }
    static func columnScale(_ column: Int) -> Float { 1 + Float(column % 5) * 2 }
    /// The true weights on the *standardized* features.
    static func trueWeight(_ column: Int) -> Float { sin(Float(column) * 0.7) }
    static let trueBias: Float = 0.5
    static let noiseLevel: Float = 0.1

    /// Builds the workflow. Outputs of `final` leaves (here: `evaluate`) go to the run directory.
    static func makeWorkflow(_ settings: Settings) -> (Workflow, TaskRef<Evaluation>) {
        let workflow = Workflow(settings.workflowName, policy: .final)
        let features = workflow.task("features") { () throws -> Tensor<Float> in try synthesizeFeatures(settings) }
        let targets = workflow.task("targets", features) { (x: Tensor<Float>) throws -> Tensor<Float> in
            try synthesizeTargets(x, settings)
        }
        let normalized = workflow.task("normalize", features) { (x: Tensor<Float>) throws -> Tensor<Float> in try normalize(x) }
        let model = workflow.task("fit", normalized, targets) { (x: Tensor<Float>, y: Tensor<Float>) in fit(x, y, settings) }
        let evaluation = workflow.task("evaluate", normalized, targets, model) { (x: Tensor<Float>, y: Tensor<Float>, m: LinearModel) in
            evaluate(x, y, m, settings)
        }
        return (workflow, evaluation)
    }

    // MARK: The steps

    /// `rows × features` float32 features, column j uniform around `columnMean(j)` with spread
    /// `columnScale(j)`. Deterministic: chunk c uses its own generator seeded from (seed, c).
    static func synthesizeFeatures(_ settings: Settings) throws -> Tensor<Float> {
        let (rows, columns) = (settings.rows, settings.features)
        let means = (0..<columns).map(columnMean), scales = (0..<columns).map(columnScale)
        return try TaskContext.current!.makeTensor(shape: [rows, columns], of: Float.self) { span in
            span.withUnsafeMutableBufferPointer { buffer in
                let out = SharedPointer(base: buffer.baseAddress!)
                let chunks = 64
                parallelFor(chunks: chunks) { chunk in
                    var rng = SplitMix64(seed: settings.seed &+ UInt64(chunk) &* 0x1_0000_0001)
                    for row in chunkRange(chunk, of: chunks, count: rows) {
                        let line = out.base + row * columns
                        for column in 0..<columns { line[column] = means[column] + scales[column] * rng.nextSignedUnit() * 1.7320508 }
                    }
                }
            }
        }
    }

    /// Targets `y = bias + Σ w_j (x_j - mean_j) / scale_j + noise`.
    static func synthesizeTargets(_ x: Tensor<Float>, _ settings: Settings) throws -> Tensor<Float> {
        let (rows, columns) = (x.shape[0], x.shape[1])
        let coefficients = (0..<columns).map { trueWeight($0) / columnScale($0) }
        let offset = trueBias - (0..<columns).reduce(Float(0)) { $0 + trueWeight($1) * columnMean($1) / columnScale($1) }
        return try x.withUnsafeBufferPointer { xs in
            let input = SharedReadPointer(base: xs.baseAddress!)
            return try TaskContext.current!.makeTensor(shape: [rows], of: Float.self) { span in
                span.withUnsafeMutableBufferPointer { buffer in
                    let out = SharedPointer(base: buffer.baseAddress!)
                    let chunks = 64
                    parallelFor(chunks: chunks) { chunk in
                        var rng = SplitMix64(seed: ~settings.seed &+ UInt64(chunk))
                        for row in chunkRange(chunk, of: chunks, count: rows) {
                            let line = input.base + row * columns
                            var sum = offset
                            for column in 0..<columns { sum += coefficients[column] * line[column] }
                            out.base[row] = sum + noiseLevel * rng.nextSignedUnit()
                        }
                    }
                }
            }
        }
    }

    /// Standardizes every column to mean 0 and variance 1 (two passes: moments, then scaling).
    static func normalize(_ x: Tensor<Float>) throws -> Tensor<Float> {
        let (rows, columns) = (x.shape[0], x.shape[1])
        return try x.withUnsafeBufferPointer { xs in
            let input = SharedReadPointer(base: xs.baseAddress!)
            let chunks = 16
            let partials = UnsafeMutableBufferPointer<Double>.allocate(capacity: chunks * columns * 2)
            defer { partials.deallocate() }
            partials.initialize(repeating: 0)
            let sums = SharedPointer(base: partials.baseAddress!)
            parallelFor(chunks: chunks) { chunk in
                // Float accumulators per block of rows, folded into Double: fast and accurate enough.
                var sum = [Float](repeating: 0, count: columns), square = [Float](repeating: 0, count: columns)
                var rowsInBlock = 0
                for row in chunkRange(chunk, of: chunks, count: rows) {
                    let line = input.base + row * columns
                    for column in 0..<columns {
                        sum[column] += line[column]
                        square[column] += line[column] * line[column]
                    }
                    rowsInBlock += 1
                    if rowsInBlock == 1024 {
                        for column in 0..<columns {
                            sums.base[(chunk * columns + column) * 2] += Double(sum[column])
                            sums.base[(chunk * columns + column) * 2 + 1] += Double(square[column])
                            sum[column] = 0
                            square[column] = 0
                        }
                        rowsInBlock = 0
                    }
                }
                for column in 0..<columns {
                    sums.base[(chunk * columns + column) * 2] += Double(sum[column])
                    sums.base[(chunk * columns + column) * 2 + 1] += Double(square[column])
                }
            }
            var mean = [Float](repeating: 0, count: columns), inverseStd = [Float](repeating: 1, count: columns)
            for column in 0..<columns {
                var s = 0.0, q = 0.0
                for chunk in 0..<chunks { s += partials[(chunk * columns + column) * 2]; q += partials[(chunk * columns + column) * 2 + 1] }
                let m = s / Double(rows)
                let variance = max(q / Double(rows) - m * m, 1e-12)
                mean[column] = Float(m)
                inverseStd[column] = Float(1 / variance.squareRoot())
            }
            let (means, scales) = (mean, inverseStd)
            return try TaskContext.current!.makeTensor(shape: [rows, columns], of: Float.self) { span in
                span.withUnsafeMutableBufferPointer { buffer in
                    let out = SharedPointer(base: buffer.baseAddress!)
                    parallelFor(chunks: chunks) { chunk in
                        for row in chunkRange(chunk, of: chunks, count: rows) {
                            let source = input.base + row * columns, target = out.base + row * columns
                            for column in 0..<columns { target[column] = (source[column] - means[column]) * scales[column] }
                        }
                    }
                }
            }
        }
    }

    /// Mini-batch gradient descent on the squared error over the training rows.
    static func fit(_ x: Tensor<Float>, _ y: Tensor<Float>, _ settings: Settings) -> LinearModel {
        let columns = x.shape[1], trainRows = min(settings.trainRows, x.shape[0])
        var weights = [Float](repeating: 0, count: columns)
        var bias: Float = 0
        var losses: [Double] = []
        let batch = settings.batchSize, rate = settings.learningRate
        x.withUnsafeBufferPointer { xs in
            y.withUnsafeBufferPointer { ys in
                weights.withUnsafeMutableBufferPointer { w in
                    var gradient = [Float](repeating: 0, count: columns)
                    var errors = [Float](repeating: 0, count: batch)
                    for _ in 0..<settings.epochs {
                        var lossSum = 0.0
                        var start = 0
                        while start < trainRows {
                            let end = min(start + batch, trainRows), count = end - start
                            // errors = X_b w + b - y_b
                            for row in start..<end {
                                let line = xs.baseAddress! + row * columns
                                var prediction = bias
                                for column in 0..<columns { prediction += line[column] * w[column] }
                                errors[row - start] = prediction - ys[row]
                            }
                            // gradient = X_bᵀ errors / count
                            for column in 0..<columns { gradient[column] = 0 }
                            var errorSum: Float = 0, squared: Float = 0
                            for row in start..<end {
                                let line = xs.baseAddress! + row * columns
                                let error = errors[row - start]
                                errorSum += error
                                squared += error * error
                                for column in 0..<columns { gradient[column] += line[column] * error }
                            }
                            let step = rate * 2 / Float(count)
                            for column in 0..<columns { w[column] -= step * gradient[column] }
                            bias -= step * errorSum
                            lossSum += Double(squared)
                            start = end
                        }
                        losses.append(lossSum / Double(trainRows))
                    }
                }
            }
        }
        return LinearModel(weights: weights, bias: bias, epochLosses: losses, learningRate: rate, batchSize: batch)
    }

    /// Mean squared error and R² on the training rows and on the held-out rows.
    static func evaluate(_ x: Tensor<Float>, _ y: Tensor<Float>, _ model: LinearModel, _ settings: Settings) -> Evaluation {
        let rows = x.shape[0], columns = x.shape[1], trainRows = min(settings.trainRows, rows)
        func metrics(_ range: Range<Int>) -> (mse: Double, r2: Double) {
            guard !range.isEmpty else { return (0, 0) }
            return x.withUnsafeBufferPointer { xs in
                y.withUnsafeBufferPointer { ys in
                    var squaredError = 0.0, sum = 0.0, sumSquares = 0.0
                    for row in range {
                        let line = xs.baseAddress! + row * columns
                        var prediction = model.bias
                        for column in 0..<columns { prediction += line[column] * model.weights[column] }
                        let error = Double(prediction - ys[row])
                        squaredError += error * error
                        sum += Double(ys[row])
                        sumSquares += Double(ys[row]) * Double(ys[row])
                    }
                    let n = Double(range.count)
                    let variance = sumSquares / n - (sum / n) * (sum / n)
                    let mse = squaredError / n
                    return (mse, variance > 0 ? 1 - mse / variance : 0)
                }
            }
        }
        let train = metrics(0..<trainRows), test = metrics(trainRows..<rows)
        return Evaluation(
            trainRows: trainRows, testRows: rows - trainRows, trainMSE: train.mse, trainR2: train.r2,
            testMSE: test.mse, testR2: test.r2, model: model)
    }
}
