import Foundation

/// `tracker.json` of a deployment folder: the nine fields of the EZOpenMSIStream recipe, plus ezmsi's own.
/// Unknown fields are kept untouched by ezmsi (it never rewrites the file).
public struct Tracker: Sendable {
    /// The recipe's fields, in its order. `service_local_target_folder` is the host data folder.
    public static let recipeFields = ["type", "service_name", "service_local_location", "service_local_target_folder",
                                      "installation_notes", "primary_contact_name", "primary_contact_email",
                                      "machine_metadata", "code_metadata"]
    /// ezmsi's fields.
    public static let ezmsiFields = ["openmsistream_command", "image", "user", "env_file", "config", "mounts",
                                     "container_name", "network", "restart", "tz", "deployment"]

    public var targetFolder: String?
    public var command: [String]?
    public var image: String?
    public var user: String?
    public var envFile: String?
    public var config: String?
    public var mounts: [String]
    public var containerName: String?
    public var network: String?
    public var restart: String?
    public var timezone: String?
    /// What `ezmsi run` last started (the `deployment` object).
    public var record: DeploymentRecord?
    /// The recipe's nine fields as found (absent fields are nil).
    public var recipe: [String: String] = [:]

    public init(targetFolder: String? = nil, command: [String]? = nil, image: String? = nil, user: String? = nil,
                envFile: String? = nil, config: String? = nil, mounts: [String] = [], containerName: String? = nil,
                network: String? = nil, restart: String? = nil, timezone: String? = nil, record: DeploymentRecord? = nil,
                recipe: [String: String] = [:]) {
        self.targetFolder = targetFolder
        self.command = command
        self.image = image
        self.user = user
        self.envFile = envFile
        self.config = config
        self.mounts = mounts
        self.containerName = containerName
        self.network = network
        self.restart = restart
        self.timezone = timezone
        self.record = record
        self.recipe = recipe
    }

    /// Returns nil when the file does not exist; throws `InputError` (file, line, fix) when it is malformed.
    public static func load(_ path: String) throws -> Tracker? {
        let bytes: [UInt8]
        switch FileReading.read(path) {
        case .success(let snap): bytes = snap.bytes
        case .failure(.missing): return nil
        case .failure(let problem):
            throw InputError(file: path, line: nil, message: problem.description,
                             fix: "make tracker.json a readable JSON file, or remove it")
        }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(bytes))
        } catch {
            throw InputError(file: path, line: JSONLocator.errorLine(bytes),
                             message: "tracker.json is not valid JSON",
                             fix: "correct the JSON syntax (e.g. `python3 -m json.tool tracker.json` shows the spot)")
        }
        guard let json = object as? [String: Any] else {
            throw InputError(file: path, line: 1, message: "tracker.json must hold a JSON object { … }",
                             fix: "start from the template written by `ezmsi init`")
        }
        func string(_ key: String) throws -> String? {
            guard let value = json[key] else { return nil }
            if value is NSNull { return nil }
            guard let s = value as? String else {
                throw InputError(file: path, line: JSONLocator.line(of: "\"\(key)\"", in: bytes),
                                 message: "\"\(key)\" must be a string", fix: "write \"\(key)\": \"…\"")
            }
            return s
        }
        var command: [String]?
        if let raw = json["openmsistream_command"] {
            if let s = raw as? String {
                do { command = try ShellWords.split(s) } catch {
                    throw InputError(file: path, line: JSONLocator.line(of: "\"openmsistream_command\"", in: bytes),
                                     message: "openmsistream_command: \(error)", fix: "close the quote")
                }
            } else if let list = raw as? [String] {
                command = list
            } else if !(raw is NSNull) {
                throw InputError(file: path, line: JSONLocator.line(of: "\"openmsistream_command\"", in: bytes),
                                 message: "\"openmsistream_command\" must be a string or a list of strings",
                                 fix: "write \"openmsistream_command\": \"DataFileUploadDirectory data --config config.config\"")
            }
        }
        var mounts: [String] = []
        if let raw = json["mounts"], !(raw is NSNull) {
            guard let list = raw as? [String] else {
                throw InputError(file: path, line: JSONLocator.line(of: "\"mounts\"", in: bytes),
                                 message: "\"mounts\" must be a list of \"HOST:CONTAINER\" strings",
                                 fix: "write \"mounts\": [\"./code:/home/openmsi/custom_folder:ro\"]")
            }
            mounts = list
        }
        var record: DeploymentRecord?
        if let raw = json["deployment"], !(raw is NSNull) {
            guard let object = raw as? [String: Any],
                  let data = try? JSONSerialization.data(withJSONObject: object),
                  let decoded = try? JSONDecoder().decode(DeploymentRecord.self, from: data) else {
                throw InputError(file: path, line: JSONLocator.line(of: "\"deployment\"", in: bytes),
                                 message: "\"deployment\" is not a deployment record written by `ezmsi run`",
                                 fix: "remove the \"deployment\" object; `ezmsi run` writes it again")
            }
            record = decoded
        }
        var recipe: [String: String] = [:]
        for field in recipeFields { if let value = try string(field) { recipe[field] = value } }
        return Tracker(targetFolder: try string("service_local_target_folder"), command: command,
                       image: try string("image"), user: try string("user"), envFile: try string("env_file"),
                       config: try string("config"), mounts: mounts, containerName: try string("container_name"),
                       network: try string("network"), restart: try string("restart"), timezone: try string("tz"),
                       record: record, recipe: recipe)
    }
}

enum JSONLocator {
    static func line(of needle: String, in bytes: [UInt8]) -> Int? {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let range = text.range(of: needle) else { return nil }
        return text[..<range.lowerBound].filter { $0 == "\n" }.count + 1
    }

    /// Finds the line of the first syntax error with a small strict scanner (Foundation's error has no position).
    static func errorLine(_ bytes: [UInt8]) -> Int? {
        var scanner = JSONScanner(bytes: bytes)
        return scanner.firstErrorLine()
    }
}

/// Just enough of a JSON grammar to say on which line a document goes wrong.
struct JSONScanner {
    let bytes: [UInt8]
    var i = 0
    var line = 1

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func firstErrorLine() -> Int? {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { i = 3 }
        guard value() else { return line }
        skipSpace()
        return i == bytes.count ? nil : line
    }

    mutating func skipSpace() {
        while i < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) {
            if bytes[i] == 0x0A { line += 1 }
            i += 1
        }
    }

    mutating func value() -> Bool {
        skipSpace()
        guard i < bytes.count else { return false }
        switch bytes[i] {
        case UInt8(ascii: "{"):
            i += 1; skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return true }
            while true {
                skipSpace()
                guard string() else { return false }
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { return false }
                i += 1
                guard value() else { return false }
                skipSpace()
                guard i < bytes.count else { return false }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "}") { i += 1; return true }
                return false
            }
        case UInt8(ascii: "["):
            i += 1; skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return true }
            while true {
                guard value() else { return false }
                skipSpace()
                guard i < bytes.count else { return false }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "]") { i += 1; return true }
                return false
            }
        case UInt8(ascii: "\""):
            return string()
        default:
            let start = i
            while i < bytes.count, !([0x20, 0x09, 0x0A, 0x0D, UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]")].contains(bytes[i])) { i += 1 }
            let word = String(decoding: bytes[start..<i], as: UTF8.self)
            return ["true", "false", "null"].contains(word) || Double(word) != nil
        }
    }

    mutating func string() -> Bool {
        guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { return false }
        i += 1
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "\\") { i += 2; continue }
            if c == UInt8(ascii: "\"") { i += 1; return true }
            if c == 0x0A || c < 0x20 { return false }
            i += 1
        }
        return false
    }
}
