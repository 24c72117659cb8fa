import DataflowCLI

extension ByteSize {
    /// Parses `text`; `option` names the option it came from, for the error message.
    /// - Throws: `CommandError.invalidSize` naming the bad value and why.
    init(parsing text: String, option: String) throws(CommandError) {
        do { try self.init(parsing: text) } catch {
            throw .invalidSize(value: text, option: option, reason: error.reason)
        }
    }

    /// Parses a comma-separated list, e.g. `1MiB,16MiB,256MiB`.
    static func parseList(_ text: String, option: String) throws(CommandError) -> [ByteSize] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard !parts.isEmpty, !text.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw .invalidSize(value: text, option: option, reason: "empty list")
        }
        var sizes: [ByteSize] = []
        for part in parts { sizes.append(try ByteSize(parsing: part, option: option)) }
        return sizes
    }
}
