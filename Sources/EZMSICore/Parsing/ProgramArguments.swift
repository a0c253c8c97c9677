import Foundation

/// An OpenMSIStream command line parsed the way its argparse parser would parse it.
public struct ParsedCommand: Sendable {
    public var programName: String
    public var program: ProgramSpec?
    /// Option name (without `--`) → value; flags map to "true".
    public var options: [String: String]
    /// Positional name → value.
    public var positionals: [String: String]
    /// What argparse would reject (it exits 2, or prints a traceback for some type callbacks).
    public var errors: [String]

    /// The effective value of an option: given, or the program's default.
    public func value(_ name: String) -> String? {
        options[name] ?? program?.option(named: name)?.defaultValue
    }
}

public enum ProgramArgumentParser {
    public static func parse(_ command: [String]) -> ParsedCommand {
        guard let name = command.first else {
            return ParsedCommand(programName: "", program: nil, options: [:], positionals: [:], errors: ["no program"])
        }
        guard let program = ProgramTable.program(named: name) else {
            return ParsedCommand(programName: name, program: nil, options: [:], positionals: [:],
                                 errors: ["\(name) is not an OpenMSIStream program"])
        }
        var result = ParsedCommand(programName: name, program: program, options: [:], positionals: [:], errors: [])
        var positionalValues: [String] = []
        var args = Array(command.dropFirst())[...]
        var onlyPositionals = false
        while let arg = args.popFirst() {
            if onlyPositionals || !arg.hasPrefix("-") || arg == "-" || Double(arg) != nil {
                positionalValues.append(arg)
                continue
            }
            if arg == "--" { onlyPositionals = true; continue }
            if arg == "-h" || arg == "--help" { result.errors.append("\(arg) prints help and exits"); continue }
            guard arg.hasPrefix("--") else {
                result.errors.append("unrecognized arguments: \(arg) (OpenMSIStream has only long options, e.g. --config)")
                continue
            }
            var body = String(arg.dropFirst(2))
            var explicit: String?
            if let eq = body.firstIndex(of: "=") {
                explicit = String(body[body.index(after: eq)...])
                body = String(body[..<eq])
            }
            // argparse: an exact match wins, else a unique prefix (allow_abbrev=True).
            let option: ProgramArgument
            if let exact = program.option(named: body) {
                option = exact
            } else {
                let matches = program.options.filter { $0.name.hasPrefix(body) }
                if matches.count == 1 {
                    option = matches[0]
                } else if matches.isEmpty {
                    result.errors.append("unrecognized arguments: \(arg)")
                    continue
                } else {
                    let names = matches.map { "--" + $0.name }.joined(separator: ", ")
                    result.errors.append("ambiguous option: \(arg) could match \(names)")
                    continue
                }
            }
            if option.type == .flag {
                if explicit != nil { result.errors.append("argument --\(option.name): ignored explicit argument '\(explicit!)'") }
                result.options[option.name] = "true"
                continue
            }
            var value = explicit
            if value == nil {
                if let next = args.first, !(next.hasPrefix("-") && Double(next) == nil && next != "-") {
                    value = args.popFirst()
                } else {
                    result.errors.append("argument --\(option.name): expected one argument")
                    continue
                }
            }
            if let problem = check(value!, as: option.type) {
                result.errors.append("argument --\(option.name): \(problem)")
            }
            result.options[option.name] = value!
        }
        for (index, spec) in program.positionals.enumerated() {
            if index < positionalValues.count {
                result.positionals[spec.name] = positionalValues[index]
                if let problem = check(positionalValues[index], as: spec.type) {
                    result.errors.append("argument \(spec.name): \(problem)")
                }
            }
        }
        if positionalValues.count < program.positionals.count {
            let missing = program.positionals[positionalValues.count...].map(\.name).joined(separator: ", ")
            result.errors.append("the following arguments are required: \(missing)")
        } else if positionalValues.count > program.positionals.count {
            let extra = positionalValues[program.positionals.count...].joined(separator: " ")
            result.errors.append("unrecognized arguments: \(extra)")
        }
        return result
    }

    /// Type callbacks that can be judged without the filesystem (paths are judged by the probe, through the mounts).
    static func check(_ value: String, as type: ArgumentType) -> String? {
        switch type {
        case .string, .flag, .path, .existingFile, .existingDirectory, .createDirectory, .configPath:
            return nil
        case .loggerLevel:
            let names = ["notset", "debug", "info", "warning", "error", "critical"]
            if names.contains(value.lowercased()) { return nil }
            if let n = Int(value), n >= 0 { return nil }
            return "invalid logger_string_to_level value: '\(value)'"
        case .positiveInt:
            guard let n = Int(value), n >= 1 else { return "invalid positive_int value: '\(value)'" }
            return nil
        case .int:
            return Int(value) == nil ? "invalid int value: '\(value)'" : nil
        case .nonNegativeFloat:
            guard let f = Double(value), f >= 0 else { return "invalid positive_float value: '\(value)'" }
            return nil
        case .powerOfTwo:
            guard let n = Int(value), n > 0, n & (n - 1) == 0 else { return "invalid int_power_of_two value: '\(value)'" }
            return nil
        case .regex:
            return (try? NSRegularExpression(pattern: value)) == nil ? "'\(value)' is not a valid regular expression" : nil
        case .choice(let choices):
            return choices.contains(value) ? nil
                : "invalid choice: '\(value)' (choose from \(choices.map { "'\($0)'" }.joined(separator: ", ")))"
        case .bucketName:
            let illegal = Set("#%&{}\\/<>*? $!'\":@+`|=")
            if let bad = value.first(where: { illegal.contains($0) }) {
                return "bucket name contains the illegal character '\(bad)'"
            }
            return nil
        case .json:
            return (try? JSONSerialization.jsonObject(with: Data(value.utf8), options: [.fragmentsAllowed])) == nil
                ? "--metadata is not valid JSON" : nil
        }
    }
}
