import Dataflow
import Foundation
import Materialize
import ObjectStore

/// The workflow of the re-run tests: source → double → report, and a shell task "label" that
/// reads a file outside the graph (`configPath`, a file dependency) and feeds "report" too.
/// Every value is kept (`always`), so that any task's consumers can read its kept file.
public enum ResumeWorkflows {
    public static func all() -> [Workflow] { [chain(configPath: "")] }

    public static func chain(
        configPath: String, reportVersion: String = "1", scale: String = "1", policy: MaterializationPolicy = .always
    ) -> Workflow {
        let workflow = Workflow("resume-chain", policy: policy)
        let source = workflow.task("source") { () -> Tensor<Float> in Tensor<Float>((0..<4096).map { Float($0 % 10) }) }
        let doubled = workflow.task("double", source) { (x: Tensor<Float>) throws -> Tensor<Float> in
            try TaskContext.current!.makeTensor(shape: x.shape, of: Float.self) { out in
                for index in out.indices { out[index] = 2 * x[index] }
            }
        }
        let label = workflow.shell(
            "label", "tr a-z A-Z < \"\(configPath)\" > \"$DATAFLOW_OUTPUT\"", output: String.self,
            options: TaskOptions(fileDependencies: [configPath]))
        workflow.task("report", doubled, label, options: TaskOptions(version: reportVersion, parameters: ["scale": scale])) {
            (x: Tensor<Float>, label: String) -> String in
            let total = x.reduce(0.0) { $0 + Double($1) } * (Double(scale) ?? 1)
            return "\(label.trimmingCharacters(in: .whitespacesAndNewlines)) \(total)"
        }
        return workflow
    }

    /// What "report" says for a config file holding `label` and a scale.
    public static func expectedReport(label: String, scale: Double = 1) -> String {
        "\(label.uppercased()) \(Double((0..<4096).reduce(0) { $0 + 2 * ($1 % 10) }) * scale)"
    }
}
